// Pins the Prometheus built for the e2e-node tier (install.sh): Debian's prometheus package is
// built without kubernetes_sd_configs, which journey 5 needs.
module paygo.dev/e2e-node/prometheus

go 1.26.7

require github.com/prometheus/prometheus v0.316.0 // indirect
