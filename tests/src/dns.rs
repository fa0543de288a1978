//! A DNS server of the test's own: hickory-server, in memory, on a free loopback port, serving
//! the zones a test gives it (NAPTR, SRV, A ...), so that the proxy (`--dns`) and the ATA
//! (`--dns`) can be pointed at names that exist only for that test. Used by the RFC 3263
//! tests (`proxy_dns.rs`) and the cluster tests (`failover.rs`).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::Arc;

use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;

pub use hickory_server::proto::rr::rdata::NAPTR;
pub use hickory_server::proto::rr::RData as Data;

/// A DNS name, from text such as `node-a.lab.test.`.
pub fn name(text: &str) -> Name {
    Name::from_str(text).expect("a DNS name")
}

/// One zone's records: its origin and (owner, data) pairs.
pub type Zone = (&'static str, Vec<(String, RData)>);

/// An A record's data.
pub fn a(ip: &str) -> RData {
    RData::A(A(ip.parse::<Ipv4Addr>().expect("an IPv4 address")))
}

/// An SRV record's data: priority 0, weight 10.
pub fn srv(port: u16, target: &str) -> RData {
    srv_with(0, 10, port, target)
}

/// An SRV record's data with its priority and weight.
pub fn srv_with(priority: u16, weight: u16, port: u16, target: &str) -> RData {
    RData::SRV(SRV::new(priority, weight, port, name(target)))
}

/// Serves `zones` over UDP on a free loopback port, from a thread of its own, for as long as
/// the test process lives; returns the address.
pub fn dns_server(zones: Vec<Zone>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS server");
    socket.set_nonblocking(true).expect("non-blocking");
    let addr = socket.local_addr().expect("its address");
    let mut catalog = Catalog::new();
    for (origin, records) in zones {
        let origin = name(origin);
        let mut zone =
            InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
        let soa = SOA::new(
            name(&format!("ns.{origin}")),
            name(&format!("admin.{origin}")),
            1,
            3600,
            600,
            86400,
            60,
        );
        assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
        for (owner, data) in records {
            assert!(zone.upsert_mut(Record::from_rdata(name(&owner), 60, data), 1));
        }
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    }
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the DNS server");
        runtime.block_on(async move {
            let mut server = Server::new(catalog);
            server
                .register_socket(tokio::net::UdpSocket::from_std(socket).expect("a tokio socket"));
            let _ = server.block_until_done().await;
        });
    });
    addr
}
