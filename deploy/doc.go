// Package deploy holds what it takes to run cmd/webhook-bridge as users
// run sidecars: the container image builder (cmd/image), the Kubernetes
// manifests and Helm chart (kubernetes/, helm/), and the tests that keep
// them, the OpenAPI description and the config schema true to the
// bridge. It is a module of its own so that the library's module does not
// depend on image, Kubernetes or OpenAPI tooling.
package deploy
