//! The routing table: which service owns which part of the public API.
//! One place, easy to read; shared/API.md is its specification.

/// Path prefix → owning service. A request goes to the service whose prefix
/// equals its path or is followed by `/` in it.
pub const ROUTES: &[(&str, &str)] = &[
    ("/api/v1/auth", "identity"),
    ("/api/v1/users", "identity"),
    ("/api/v1/products", "catalog"),
    ("/api/v1/categories", "catalog"),
    ("/api/v1/inventory", "inventory"),
    ("/api/v1/cart", "cart"),
    ("/api/v1/orders", "orders"),
    ("/api/v1/payments", "payments"),
    ("/api/v1/notifications", "notifications"),
];

/// The service that serves every path outside `/api/`: the web pages.
pub const PAGES: &str = "storefront";

/// The service that owns `path`, if any: the owner of its API prefix, or
/// the storefront for anything outside `/api/`.
pub fn route(path: &str) -> Option<&'static str> {
    if path != "/api" && !path.starts_with("/api/") {
        return Some(PAGES);
    }
    ROUTES.iter().find_map(|(prefix, service)| {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(*service)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(route("/api/v1/products"), Some("catalog"));
        assert_eq!(route("/api/v1/products/0192"), Some("catalog"));
        assert_eq!(route("/api/v1/auth/login"), Some("identity"));
        assert_eq!(route("/api/v1/users/me"), Some("identity"));
        assert_eq!(route("/api/v1/cart/items/1"), Some("cart"));
        assert_eq!(route("/api/v1/productsX"), None);
        assert_eq!(route("/api/v1/nothing"), None);
        assert_eq!(route("/api/v2/products"), None);
        assert_eq!(route("/api"), None);
        assert_eq!(route("/"), Some("storefront"));
        assert_eq!(route("/products/0192"), Some("storefront"));
        assert_eq!(route("/apiary"), Some("storefront"));
    }
}
