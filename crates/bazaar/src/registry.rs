//! The one list of services this binary knows. `bazaar serve NAME` looks a
//! service up here, and `bazaar up` starts every entry and wires each one to
//! the services it calls. Adding a service is adding one entry to
//! [`SERVICES`].

use std::future::Future;
use std::pin::Pin;

use bazaar_platform::{Config, Service};

/// A running service process: resolves when it has shut down.
pub type ServiceFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// Starts a service from its configuration.
pub type RunFn = fn(Config) -> ServiceFuture;

/// Which other services a service calls, so the launcher hands it their
/// endpoints (`BAZAAR_UPSTREAM_<NAME>`).
#[derive(Debug, Clone, Copy)]
pub enum Calls {
    /// Every service of the fleet, itself included (the gateway: it routes to
    /// all of them and reports all of them in `/api/v1/status`).
    Every,
    /// Only these services, by name.
    These(&'static [&'static str]),
}

/// One service the binary can run.
#[derive(Debug)]
pub struct ServiceDef {
    /// Name, lower-case letters: `catalog`. Also the `serve` argument, the
    /// data sub-directory and (upper-cased) the `BAZAAR_UPSTREAM_*` suffix.
    pub name: &'static str,
    /// Port used by `bazaar serve` when `BAZAAR_LISTEN` is unset.
    pub default_port: u16,
    /// The services it calls.
    pub calls: Calls,
    /// The service's own environment variables, beyond the platform's.
    pub vars: &'static [bazaar_platform::config::Var],
    /// Fixed process environment it runs with wherever it runs (the
    /// launcher's children, Compose and Kubernetes alike): tuning of the
    /// runtime underneath, not settings of the service.
    pub process_env: &'static [(&'static str, &'static str)],
    /// Runs it to completion.
    pub run: RunFn,
}

/// The service that owns the public port (`bazaar up --port`).
pub const FRONT_DOOR: &str = "gateway";

/// Every service, in start and display order.
pub static SERVICES: &[ServiceDef] = &[
    ServiceDef {
        name: "gateway",
        default_port: 8080,
        calls: Calls::Every,
        vars: bazaar_gateway::VARS,
        process_env: &[],
        run: run::<bazaar_gateway::Gateway>,
    },
    ServiceDef {
        name: "identity",
        default_port: 7101,
        calls: Calls::These(&[]),
        vars: bazaar_identity::VARS,
        // Every argon2id hash takes a 19 MiB block. With glibc's dynamic
        // mmap threshold, the first one freed raises the threshold, and
        // every later block comes from the heap and stays resident (about
        // 20 MB for good); a fixed threshold returns each block on free.
        process_env: &[("MALLOC_MMAP_THRESHOLD_", "131072")],
        run: run::<bazaar_identity::Identity>,
    },
    ServiceDef {
        name: "catalog",
        default_port: 7102,
        // Identity's JWKS verifies sellers' tokens.
        calls: Calls::These(&["identity"]),
        vars: bazaar_catalog::VARS,
        process_env: &[],
        run: run::<bazaar_catalog::Catalog>,
    },
    ServiceDef {
        name: "inventory",
        default_port: 7103,
        calls: Calls::These(&["identity"]),
        vars: bazaar_inventory::VARS,
        process_env: &[],
        run: run::<bazaar_inventory::Inventory>,
    },
    ServiceDef {
        name: "cart",
        default_port: 7104,
        calls: Calls::These(&["identity"]),
        vars: bazaar_cart::VARS,
        process_env: &[],
        run: run::<bazaar_cart::Cart>,
    },
    ServiceDef {
        name: "orders",
        default_port: 7105,
        // The checkout saga: prices from catalog, stock from inventory,
        // money from payments, the cart from cart.
        calls: Calls::These(&["identity", "catalog", "inventory", "payments", "cart"]),
        vars: bazaar_orders::VARS,
        process_env: &[],
        run: run::<bazaar_orders::Orders>,
    },
    ServiceDef {
        name: "payments",
        default_port: 7106,
        calls: Calls::These(&["identity"]),
        vars: bazaar_payments::VARS,
        process_env: &[],
        run: run::<bazaar_payments::Payments>,
    },
    ServiceDef {
        name: "notifications",
        default_port: 7107,
        calls: Calls::These(&["identity"]),
        vars: bazaar_notifications::VARS,
        process_env: &[],
        run: run::<bazaar_notifications::Notifications>,
    },
    ServiceDef {
        name: "storefront",
        default_port: 7108,
        // A backend-for-frontend: the shop's pages call the services'
        // public APIs, and the ops console reads every instance's metrics.
        calls: Calls::Every,
        vars: bazaar_storefront::VARS,
        process_env: &[],
        run: run::<bazaar_storefront::Storefront>,
    },
];

/// Boxes the platform's `serve` so every service fits one function type.
fn run<S: Service>(config: Config) -> ServiceFuture {
    Box::pin(bazaar_platform::serve::<S>(config))
}

/// The service called `name`, if the binary knows it.
pub fn find(name: &str) -> Option<&'static ServiceDef> {
    SERVICES.iter().find(|s| s.name == name)
}

/// The names of all services, in order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    SERVICES.iter().map(|s| s.name)
}

impl ServiceDef {
    /// The services this one calls, in registry order.
    pub fn callees(&self) -> Vec<&'static ServiceDef> {
        match self.calls {
            Calls::Every => SERVICES.iter().collect(),
            Calls::These(names) => SERVICES
                .iter()
                .filter(|s| names.contains(&s.name))
                .collect(),
        }
    }

    /// The variable that carries this service's endpoints to its callers.
    pub fn upstream_var(&self) -> String {
        format!("BAZAAR_UPSTREAM_{}", self.name.to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_and_ports_are_unique_and_usable() {
        let mut names = HashSet::new();
        let mut ports = HashSet::new();
        for s in SERVICES {
            assert!(names.insert(s.name), "{} registered twice", s.name);
            assert!(
                ports.insert(s.default_port),
                "{} reuses port {}",
                s.name,
                s.default_port
            );
            // The name becomes a directory, a database suffix and an
            // upper-case variable name, so keep it to plain letters.
            assert!(
                !s.name.is_empty() && s.name.chars().all(|c| c.is_ascii_lowercase()),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn callees_are_registered() {
        for s in SERVICES {
            if let Calls::These(callees) = s.calls {
                for c in callees {
                    assert!(find(c).is_some(), "{} calls unknown service {c}", s.name);
                }
            }
        }
    }

    #[test]
    fn the_front_door_exists_and_sees_everyone() {
        let gateway = find(FRONT_DOOR).expect("front door registered");
        assert_eq!(gateway.callees().len(), SERVICES.len());
        assert_eq!(gateway.upstream_var(), "BAZAAR_UPSTREAM_GATEWAY");
    }
}
