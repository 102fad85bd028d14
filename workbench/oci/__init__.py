"""Pure OCI and Docker spec code: digests, media types, references, manifests, wire framing. No IO."""
