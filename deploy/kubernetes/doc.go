// Package kubernetes holds no code of its own: its tests keep the
// Kubernetes manifests beside it (deployment/ and sidecar/) and the Helm
// chart in ../helm/webhook-bridge true to the Kubernetes API and to the
// bridge. They decode every manifest and every document the chart renders
// strictly into the Kubernetes API types, lint the chart with Helm's own
// linter, check each bridge container's probes, ports, grace period,
// security context, resources and secrets, and run the real bridge binary
// on a real redis-server with each configuration the manifests and the
// chart give it.
package kubernetes
