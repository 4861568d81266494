// The pod sandbox ("pause") program of the single-node test cluster (see ../README.md): no
// registry here to pull registry.k8s.io/pause from, so images.sh builds this one instead.
module paygo.test/node/pause

go 1.26.0
