"""Transport security: the cluster's own certificate authorities (pki.py, authority.py), the per-host
bundles they issue (bundle.py), and the TLS contexts every connection uses (contexts.py, http.py)."""
