//! The fleet as data: every instance with its port and the exact `BAZAAR_*`
//! environment it is started with. Computed once at start, so an instance
//! restarted later comes back on the same port and the endpoints its callers
//! hold stay valid.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bazaar_platform::server::Service;
use url::Url;

use crate::cli::{PostgresUrl, RedisUrl};
use crate::registry::{self, ServiceDef};

/// Where every process of the fleet listens.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Variables the launcher decides for its children. Inherited values of these
/// are removed, so a stray export in the caller's shell cannot rewire the
/// fleet; `BAZAAR_UPSTREAM_*` are removed too (see [`launcher_owned`]).
const OWNED: &[&str] = &[
    "BAZAAR_LISTEN",
    "BAZAAR_SHARED_LISTEN",
    "BAZAAR_INSTANCE",
    "BAZAAR_DATA_DIR",
    "BAZAAR_DATABASE_URL",
    "BAZAAR_EVENT_LOG",
    "BAZAAR_NATS_URL",
    "BAZAAR_REDIS_URL",
    "BAZAAR_EXIT_ON_STDIN_CLOSE",
    "BAZAAR_RESTARTS",
    bazaar_identity::ADMIN_PASSWORD,
    bazaar_identity::ADMIN_PASSWORD_FILE,
];

/// The runtime's thread count (`bazaar_platform::config::VARS`).
const WORKER_THREADS: &str = "BAZAAR_WORKER_THREADS";

/// Whether an inherited variable must not reach a child.
pub fn launcher_owned(name: &str) -> bool {
    OWNED.contains(&name) || name.starts_with("BAZAAR_UPSTREAM_")
}

/// What the fleet is made of, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Absolute data directory; each service gets `<data_dir>/<service>`.
    pub data_dir: PathBuf,
    /// The gateway's public port.
    pub public_port: u16,
    /// Instances per service; absent means one.
    pub replicas: BTreeMap<&'static str, usize>,
    /// The PostgreSQL server, if not SQLite.
    pub postgres: Option<PostgresUrl>,
    /// NATS, if not the embedded log.
    pub nats: Option<Url>,
    /// Redis, if not memory/SQLite.
    pub redis: Option<RedisUrl>,
    /// `BAZAAR_LOG_FORMAT` for every child.
    pub log_format: String,
    /// The admin password file, for identity only
    /// (`BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE`); `None`: no admin account.
    pub admin_password_file: Option<PathBuf>,
}

/// One process to run.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its service.
    pub service: &'static ServiceDef,
    /// Position of the service in the registry (picks its colour).
    pub service_index: usize,
    /// `<service>-<i>`.
    pub name: String,
    /// Its own address (internal; the gateway also shares the public one).
    pub addr: SocketAddr,
    /// The environment it is started with, on top of the inherited one.
    pub env: Vec<(String, String)>,
}

/// The whole fleet.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The public address (the front door's shared port).
    pub public: SocketAddr,
    /// Every instance, grouped by service in registry order.
    pub instances: Vec<Instance>,
}

impl Plan {
    /// Lays out `services` with `options`, taking one port per instance from
    /// `next_port`.
    pub fn new(
        services: &'static [ServiceDef],
        options: &Options,
        mut next_port: impl FnMut() -> io::Result<u16>,
    ) -> io::Result<Self> {
        let public = SocketAddr::from((LOOPBACK, options.public_port));
        // Ports first: every caller needs every callee's endpoints.
        let mut addrs: Vec<Vec<SocketAddr>> = Vec::with_capacity(services.len());
        for service in services {
            let count = options.replicas.get(service.name).copied().unwrap_or(1);
            let mut ports = Vec::with_capacity(count);
            for _ in 0..count {
                ports.push(SocketAddr::from((LOOPBACK, next_port()?)));
            }
            addrs.push(ports);
        }
        let endpoints = |name: &str| -> String {
            let index = services
                .iter()
                .position(|s| s.name == name)
                .unwrap_or_default();
            addrs[index]
                .iter()
                .map(|a| format!("http://{a}"))
                .collect::<Vec<_>>()
                .join(",")
        };

        // Many processes share the machine's cores: one runtime thread each,
        // unless the caller's environment asks otherwise (then inherited).
        let one_thread = std::env::var_os(WORKER_THREADS).is_none();
        let mut instances = Vec::new();
        for (service_index, service) in services.iter().enumerate() {
            for (i, addr) in addrs[service_index].iter().enumerate() {
                let name = format!("{}-{i}", service.name);
                let mut env = vec![
                    ("BAZAAR_LISTEN".to_owned(), addr.to_string()),
                    ("BAZAAR_INSTANCE".to_owned(), name.clone()),
                    (
                        "BAZAAR_DATA_DIR".to_owned(),
                        path_string(&options.data_dir.join(service.name)),
                    ),
                    ("BAZAAR_EXIT_ON_STDIN_CLOSE".to_owned(), "1".to_owned()),
                    ("BAZAAR_LOG_FORMAT".to_owned(), options.log_format.clone()),
                ];
                if one_thread {
                    env.push((WORKER_THREADS.to_owned(), "1".to_owned()));
                }
                if service.name == registry::FRONT_DOOR {
                    env.push(("BAZAAR_SHARED_LISTEN".to_owned(), public.to_string()));
                }
                for callee in service.callees() {
                    env.push((callee.upstream_var(), endpoints(callee.name)));
                }
                if let Some(pg) = &options.postgres {
                    env.push((
                        "BAZAAR_DATABASE_URL".to_owned(),
                        pg.for_service(service.name).to_string(),
                    ));
                }
                match &options.nats {
                    Some(nats) => env.push(("BAZAAR_NATS_URL".to_owned(), nats.to_string())),
                    // One embedded log for the whole fleet, beside the
                    // services' directories: it is how they exchange events.
                    None => env.push((
                        "BAZAAR_EVENT_LOG".to_owned(),
                        path_string(&options.data_dir.join("events.db")),
                    )),
                }
                if let Some(redis) = &options.redis {
                    env.push(("BAZAAR_REDIS_URL".to_owned(), redis.0.to_string()));
                }
                env.extend(
                    service
                        .process_env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
                );
                if let Some(file) = &options.admin_password_file
                    && service.name == <bazaar_identity::Identity as Service>::NAME
                {
                    env.push((
                        bazaar_identity::ADMIN_PASSWORD_FILE.to_owned(),
                        path_string(file),
                    ));
                }
                instances.push(Instance {
                    service,
                    service_index,
                    name,
                    addr: *addr,
                    env,
                });
            }
        }
        Ok(Self { public, instances })
    }
}

fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_postgres;
    use crate::registry::SERVICES;

    fn options() -> Options {
        Options {
            data_dir: PathBuf::from("/srv/bazaar"),
            public_port: 8080,
            replicas: BTreeMap::from([(registry::FRONT_DOOR, 2)]),
            postgres: None,
            nats: None,
            redis: None,
            log_format: "json".to_owned(),
            admin_password_file: Some(PathBuf::from("/srv/bazaar/admin-password")),
        }
    }

    fn ports() -> impl FnMut() -> io::Result<u16> {
        let mut next = 40000;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn env<'a>(instance: &'a Instance, key: &str) -> Option<&'a str> {
        instance
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_instance_has_its_own_port_and_name() {
        let plan = Plan::new(SERVICES, &options(), ports()).unwrap();
        assert_eq!(plan.instances.len(), SERVICES.len() + 1);
        let mut ports: Vec<_> = plan.instances.iter().map(|i| i.addr.port()).collect();
        ports.dedup();
        assert_eq!(ports.len(), plan.instances.len());
        let gw: Vec<_> = plan
            .instances
            .iter()
            .filter(|i| i.service.name == "gateway")
            .collect();
        assert_eq!(gw[0].name, "gateway-0");
        assert_eq!(gw[1].name, "gateway-1");
        for g in &gw {
            assert_eq!(env(g, "BAZAAR_SHARED_LISTEN"), Some("127.0.0.1:8080"));
            assert_eq!(env(g, "BAZAAR_DATA_DIR"), Some("/srv/bazaar/gateway"));
            assert_eq!(env(g, "BAZAAR_EXIT_ON_STDIN_CLOSE"), Some("1"));
            assert_eq!(env(g, "BAZAAR_LISTEN"), Some(g.addr.to_string().as_str()));
            if std::env::var_os(WORKER_THREADS).is_none() {
                assert_eq!(env(g, WORKER_THREADS), Some("1"));
            }
        }
    }

    #[test]
    fn the_gateway_gets_every_service_including_its_own_replicas() {
        let plan = Plan::new(SERVICES, &options(), ports()).unwrap();
        let gw = &plan.instances[0];
        for s in SERVICES {
            let urls =
                env(gw, &s.upstream_var()).unwrap_or_else(|| panic!("no upstream for {}", s.name));
            let expected: Vec<String> = plan
                .instances
                .iter()
                .filter(|i| i.service.name == s.name)
                .map(|i| format!("http://{}", i.addr))
                .collect();
            assert_eq!(urls, expected.join(","));
        }
        // The result must be what the platform accepts.
        let config = bazaar_platform::Config::from_vars("gateway", 8080, gw.env.clone()).unwrap();
        assert_eq!(config.upstreams["gateway"].len(), 2);
        assert_eq!(config.shared_listen, Some(plan.public));
        assert_eq!(config.event_log, PathBuf::from("/srv/bazaar/events.db"));
        assert!(config.nats_url.is_none());
    }

    #[test]
    fn backends_are_passed_through_with_a_database_per_service() {
        let mut options = options();
        options.postgres = Some(parse_postgres("postgres://u:pw@db:5432/fleet1").unwrap());
        options.nats = Some(Url::parse("nats://n:4222").unwrap());
        options.redis = Some(RedisUrl(Url::parse("redis://r:6379").unwrap()));
        let plan = Plan::new(SERVICES, &options, ports()).unwrap();
        for i in &plan.instances {
            let db = env(i, "BAZAAR_DATABASE_URL").unwrap();
            assert_eq!(
                db,
                format!("postgres://u:pw@db:5432/fleet1_{}", i.service.name)
            );
            assert_eq!(env(i, "BAZAAR_NATS_URL"), Some("nats://n:4222"));
            assert_eq!(env(i, "BAZAAR_EVENT_LOG"), None);
            assert_eq!(env(i, "BAZAAR_REDIS_URL"), Some("redis://r:6379"));
            bazaar_platform::Config::from_vars(i.service.name, 1, i.env.clone()).unwrap();
        }
    }

    #[test]
    fn inherited_topology_is_not_passed_on() {
        assert!(launcher_owned("BAZAAR_UPSTREAM_CATALOG"));
        assert!(launcher_owned("BAZAAR_DATABASE_URL"));
        assert!(launcher_owned("BAZAAR_RESTARTS"));
        assert!(launcher_owned("BAZAAR_IDENTITY_ADMIN_PASSWORD"));
        assert!(launcher_owned("BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE"));
        assert!(!launcher_owned("BAZAAR_IDENTITY_ADMIN_EMAIL"));
        assert!(!launcher_owned("BAZAAR_LOG"));
        assert!(!launcher_owned("BAZAAR_ENV"));
    }

    #[test]
    fn every_instance_gets_its_services_process_env() {
        let plan = Plan::new(SERVICES, &options(), ports()).unwrap();
        for i in &plan.instances {
            for (name, value) in i.service.process_env {
                assert_eq!(env(i, name), Some(*value), "{}: {name}", i.name);
            }
        }
        let identity = plan
            .instances
            .iter()
            .find(|i| i.service.name == "identity")
            .expect("identity planned");
        assert_eq!(env(identity, "MALLOC_MMAP_THRESHOLD_"), Some("131072"));
    }

    #[test]
    fn only_identity_gets_the_admin_password_file() {
        let plan = Plan::new(SERVICES, &options(), ports()).unwrap();
        for i in &plan.instances {
            let file = env(i, "BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE");
            if i.service.name == "identity" {
                assert_eq!(file, Some("/srv/bazaar/admin-password"));
            } else {
                assert_eq!(file, None, "{}", i.name);
            }
        }
        let mut without = options();
        without.admin_password_file = None;
        let plan = Plan::new(SERVICES, &without, ports()).unwrap();
        assert!(
            plan.instances
                .iter()
                .all(|i| env(i, "BAZAAR_IDENTITY_ADMIN_PASSWORD_FILE").is_none())
        );
    }
}
