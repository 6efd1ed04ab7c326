//! How many connections a listener holds open: in all, and per client address.
//!
//! Each open connection costs a file descriptor and a task, whether or not it ever sends a
//! request, so a client that opens thousands and sends nothing (slowloris) would otherwise
//! take every descriptor the process has and starve everyone else. A connection over either
//! cap is closed as soon as it is accepted. IPv6 clients are counted per /64 (what one host
//! or one customer is usually handed), IPv4 per address; an IPv4-mapped IPv6 address counts
//! as its IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

/// The caps, and the connections open now.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds its maximum of connections.
    Total,
    /// This client (address, or IPv6 /64) holds its maximum.
    PerClient,
}

impl Refusal {
    /// The metric label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerClient => "per_client",
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    client: IpAddr,
}

impl ConnectionLimits {
    /// At most `max_total` connections, and `max_per_client` from one client (both at least 1).
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_client: max_per_client.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// Takes a place for a connection from `ip`, or says why there is none.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let client = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let mine = open.per_client.entry(client).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        *mine += 1;
        open.total += 1;
        Ok(ConnectionPermit {
            limits: Arc::clone(self),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .per_client
            .len()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// The key a client is counted under.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = v6.to_bits() & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from_bits(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionLimits, Refusal};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn v4(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    #[test]
    fn one_client_cannot_take_the_places_of_others() {
        let limits = ConnectionLimits::new(5, 2);
        let a1 = limits.admit(v4(2)).expect("first");
        let _a2 = limits.admit(v4(2)).expect("second");
        assert_eq!(limits.admit(v4(2)).err(), Some(Refusal::PerClient));
        let _b = limits.admit(v4(1)).expect("another client");
        drop(a1);
        let _a3 = limits.admit(v4(2)).expect("a freed place");
        assert_eq!(limits.open(), 3);
    }

    #[test]
    fn the_total_cap_holds_across_clients() {
        let limits = ConnectionLimits::new(3, 10);
        let held: Vec<_> = (1..=3)
            .map(|n| limits.admit(v4(n)).expect("room"))
            .collect();
        assert_eq!(limits.admit(v4(9)).err(), Some(Refusal::Total));
        drop(held);
        assert_eq!(limits.open(), 0);
        assert_eq!(limits.clients(), 0, "nothing kept for gone clients");
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limits = ConnectionLimits::new(10, 1);
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().expect("v6");
        let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().expect("v6");
        let c: Ipv6Addr = "2001:db8:1:3::1".parse().expect("v6");
        let _a = limits.admit(IpAddr::V6(a)).expect("first of the /64");
        assert_eq!(
            limits.admit(IpAddr::V6(b)).err(),
            Some(Refusal::PerClient),
            "same /64"
        );
        let _c = limits.admit(IpAddr::V6(c)).expect("another /64");
        let _v4 = limits.admit(v4(7)).expect("v4");
        let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 7).to_ipv6_mapped());
        assert_eq!(limits.admit(mapped).err(), Some(Refusal::PerClient));
    }

    proptest! {
        /// Whatever the order of connects and closes, no client holds more than its cap, the
        /// total never passes its cap, a refusal happens only at a cap, and when everything
        /// is closed nothing is left counted.
        #[test]
        fn the_caps_hold_and_everything_is_given_back(
            max_total in 1usize..8,
            max_per_client in 1usize..4,
            steps in proptest::collection::vec((any::<bool>(), 0u8..4), 1..200),
        ) {
            let limits = ConnectionLimits::new(max_total, max_per_client);
            let mut held: Vec<(u8, super::ConnectionPermit)> = Vec::new();
            for (connect, client) in steps {
                if connect {
                    let mine = held.iter().filter(|(c, _)| *c == client).count();
                    match limits.admit(v4(client)) {
                        Ok(p) => held.push((client, p)),
                        Err(Refusal::Total) => prop_assert_eq!(held.len(), max_total),
                        Err(Refusal::PerClient) => prop_assert_eq!(mine, max_per_client),
                    }
                } else if let Some(i) = held.iter().position(|(c, _)| *c == client) {
                    held.swap_remove(i);
                }
                prop_assert!(held.len() <= max_total);
                prop_assert_eq!(limits.open(), held.len());
                for c in 0..4 {
                    prop_assert!(held.iter().filter(|(h, _)| *h == c).count() <= max_per_client);
                }
            }
            held.clear();
            prop_assert_eq!(limits.open(), 0);
            prop_assert_eq!(limits.clients(), 0);
        }
    }
}
