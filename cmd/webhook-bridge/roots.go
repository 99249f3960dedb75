package main

// The bridge verifies its receivers' TLS certificates against the
// system's trust store where there is one (SSL_CERT_FILE, SSL_CERT_DIR,
// or the distribution's bundle such as /etc/ssl/certs/ca-certificates.crt).
// Where there is none — the container image is FROM scratch and carries
// no bundle — it falls back to the Mozilla roots compiled in by this
// import, pinned in go.mod and updated with it, so that the same commit
// trusts the same roots wherever it was built. Mounting a bundle at one
// of those paths, or pointing SSL_CERT_FILE at one (a private CA, say),
// replaces the fallback entirely.
import _ "golang.org/x/crypto/x509roots/fallback"
