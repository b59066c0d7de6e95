//! Congestion control per network path: Cubic on fast local links, BBRv3 everywhere else.
//!
//! Why two: noq's default, Cubic, halves its window at every lost datagram, so random loss
//! (Wi-Fi, mobile, a busy relay) starves it: with 1% loss and +50 ms it moved 0.3 MB/s where BBRv3,
//! which models the path's bandwidth and round trip instead of reacting to each loss, moved 7.4
//! MB/s (`LOSS=1 scripts/wan-bench.sh`). On loopback and fast LANs BBRv3 loses instead: with the CPU
//! saturated its bandwidth samples swing, and one raw stream took 1.0-2.8 s where Cubic took 1.0 s.
//!
//! noq builds one controller per path, so each path gets an [`Adaptive`]: both controllers see every
//! event of the path, and the path's minimum round trip picks whose window and pacing apply. The
//! minimum only falls as samples come in, so a path whose first sample was a slow handshake still
//! ends on the controller its real round trip calls for, and a path once local stays local (BBRv3
//! is dropped then).

use noq_proto::RttEstimator;
use noq_proto::congestion::{Bbr3Config, Controller, ControllerFactory, ControllerMetrics, CubicConfig};
use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Paths with a minimum round trip below this are local (loopback, wired LAN): Cubic.
pub const LOCAL_RTT: Duration = Duration::from_millis(2);

/// Which congestion controller a connection's paths use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Congestion {
    /// Cubic on local paths, BBRv3 on the others ([`Adaptive`]).
    #[default]
    Auto,
    /// Cubic everywhere (noq's default).
    Cubic,
    /// BBRv3 everywhere.
    Bbr,
}

impl Congestion {
    /// The factory noq builds each path's controller with.
    pub fn factory(self) -> Arc<dyn ControllerFactory + Send + Sync> {
        match self {
            Congestion::Auto => Arc::new(AdaptiveConfig::default()),
            Congestion::Cubic => Arc::new(CubicConfig::default()),
            Congestion::Bbr => Arc::new(Bbr3Config::default()),
        }
    }
}

impl std::str::FromStr for Congestion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Congestion::Auto),
            "cubic" => Ok(Congestion::Cubic),
            "bbr" => Ok(Congestion::Bbr),
            other => Err(format!("congestion control {other:?}: use auto, cubic or bbr")),
        }
    }
}

/// Builds an [`Adaptive`] controller for each new path.
pub struct AdaptiveConfig {
    local: Arc<dyn ControllerFactory + Send + Sync>,
    remote: Arc<dyn ControllerFactory + Send + Sync>,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self { local: Arc::new(CubicConfig::default()), remote: Arc::new(Bbr3Config::default()) }
    }
}

impl ControllerFactory for AdaptiveConfig {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(Adaptive {
            cubic: self.local.clone().build(now, current_mtu),
            bbr: Some(self.remote.clone().build(now, current_mtu)),
            use_bbr: false,
        })
    }
}

/// One path's controller: Cubic once the path proves local, BBRv3 while it does not.
#[derive(Debug)]
pub struct Adaptive {
    cubic: Box<dyn Controller>,
    /// Dropped once the path proves local: a minimum round trip never rises again, and feeding
    /// BBRv3 every packet cost a raw loopback stream ~4% of its speed.
    bbr: Option<Box<dyn Controller>>,
    /// Cubic (noq's default) until a round trip is measured.
    use_bbr: bool,
}

impl Adaptive {
    fn active(&self) -> &dyn Controller {
        match &self.bbr {
            Some(bbr) if self.use_bbr => bbr.as_ref(),
            _ => self.cubic.as_ref(),
        }
    }

    /// Take the path's minimum round trip into account.
    fn observe(&mut self, min_rtt: Duration) {
        if self.bbr.is_some() && !is_local(min_rtt) {
            self.use_bbr = true;
        } else {
            self.bbr = None;
            self.use_bbr = false;
        }
    }

    fn both(&mut self, mut f: impl FnMut(&mut dyn Controller)) {
        f(self.cubic.as_mut());
        if let Some(bbr) = &mut self.bbr {
            f(bbr.as_mut());
        }
    }
}

/// Whether a path with this minimum round trip is local (Cubic) rather than remote (BBRv3).
pub fn is_local(min_rtt: Duration) -> bool {
    min_rtt < LOCAL_RTT
}

impl Controller for Adaptive {
    fn on_sent(&mut self, now: Instant, bytes: u64, largest_pn: u64) {
        self.both(|c| c.on_sent(now, bytes, largest_pn));
    }

    fn on_packet_sent(&mut self, now: Instant, bytes: u16, pn: u64) {
        self.both(|c| c.on_packet_sent(now, bytes, pn));
    }

    fn on_cwnd_limited(&mut self) {
        self.both(|c| c.on_cwnd_limited());
    }

    fn on_ack(&mut self, now: Instant, sent: Instant, bytes: u64, pn: u64, app_limited: bool, rtt: &RttEstimator) {
        self.observe(rtt.min());
        self.both(|c| c.on_ack(now, sent, bytes, pn, app_limited, rtt));
    }

    fn on_end_acks(&mut self, now: Instant, in_flight: u64, app_limited: bool, largest: Option<u64>) {
        self.both(|c| c.on_end_acks(now, in_flight, app_limited, largest));
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        persistent: bool,
        ecn: bool,
        lost_bytes: u64,
        largest_lost_pn: u64,
    ) {
        self.both(|c| c.on_congestion_event(now, sent, persistent, ecn, lost_bytes, largest_lost_pn));
    }

    fn on_packet_lost(&mut self, lost_bytes: u16, pn: u64, now: Instant) {
        self.both(|c| c.on_packet_lost(lost_bytes, pn, now));
    }

    fn on_spurious_congestion_event(&mut self) {
        self.both(|c| c.on_spurious_congestion_event());
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.both(|c| c.on_mtu_update(new_mtu));
    }

    fn on_ack_frequency_update(&mut self, threshold: u64, max_ack_delay: Duration) {
        self.both(|c| c.on_ack_frequency_update(threshold, max_ack_delay));
    }

    fn window(&self) -> u64 {
        self.active().window()
    }

    fn metrics(&self) -> ControllerMetrics {
        self.active().metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(Adaptive {
            cubic: self.cubic.clone_box(),
            bbr: self.bbr.as_ref().map(|b| b.clone_box()),
            use_bbr: self.use_bbr,
        })
    }

    fn initial_window(&self) -> u64 {
        self.active().initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> Adaptive {
        let b = Arc::new(AdaptiveConfig::default()).build(Instant::now(), 1200);
        *b.into_any().downcast::<Adaptive>().expect("an Adaptive")
    }

    // Cubic leaves pacing to noq's window/RTT default; BBRv3 sets its own rate.
    fn paced_by_bbr(c: &Adaptive) -> bool {
        c.metrics().pacing_rate.is_some()
    }

    #[test]
    fn names_parse() {
        assert_eq!("auto".parse(), Ok(Congestion::Auto));
        assert_eq!("cubic".parse(), Ok(Congestion::Cubic));
        assert_eq!("bbr".parse(), Ok(Congestion::Bbr));
        assert!("reno".parse::<Congestion>().unwrap_err().contains("auto, cubic or bbr"));
    }

    #[test]
    fn a_path_starts_on_cubic() {
        let c = path();
        assert!(!paced_by_bbr(&c));
        assert_eq!(c.window(), Arc::new(CubicConfig::default()).build(Instant::now(), 1200).window());
    }

    #[test]
    fn a_long_path_gets_bbr_and_a_local_one_keeps_cubic_for_good() {
        let mut remote = path();
        remote.observe(Duration::from_millis(30));
        assert!(paced_by_bbr(&remote));

        let mut local = path();
        local.observe(Duration::from_micros(150));
        assert!(!paced_by_bbr(&local));
        assert!(local.bbr.is_none(), "a local path stops feeding BBRv3");
        local.observe(Duration::from_millis(30));
        assert!(!paced_by_bbr(&local), "a minimum round trip never rises, so a local path stays local");

        // A remote path whose handshake was slow learns its real minimum later.
        remote.observe(Duration::from_micros(400));
        assert!(!paced_by_bbr(&remote));
        assert!(is_local(Duration::from_micros(1999)) && !is_local(LOCAL_RTT));
    }

    #[test]
    fn both_controllers_see_every_event_until_the_path_is_known() {
        /// Counts the events it is given; its window names it.
        #[derive(Debug, Clone)]
        struct Counting(Arc<std::sync::atomic::AtomicUsize>, u64);
        impl Counting {
            fn saw(&self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        impl ControllerFactory for Counting {
            fn build(self: Arc<Self>, _: Instant, _: u16) -> Box<dyn Controller> {
                Box::new((*self).clone())
            }
        }
        impl Controller for Counting {
            fn on_sent(&mut self, _: Instant, _: u64, _: u64) {
                self.saw();
            }
            fn on_packet_sent(&mut self, _: Instant, _: u16, _: u64) {
                self.saw();
            }
            fn on_cwnd_limited(&mut self) {
                self.saw();
            }
            fn on_end_acks(&mut self, _: Instant, _: u64, _: bool, _: Option<u64>) {
                self.saw();
            }
            fn on_congestion_event(&mut self, _: Instant, _: Instant, _: bool, _: bool, _: u64, _: u64) {
                self.saw();
            }
            fn on_packet_lost(&mut self, _: u16, _: u64, _: Instant) {
                self.saw();
            }
            fn on_spurious_congestion_event(&mut self) {
                self.saw();
            }
            fn on_mtu_update(&mut self, _: u16) {
                self.saw();
            }
            fn on_ack_frequency_update(&mut self, _: u64, _: Duration) {
                self.saw();
            }
            fn window(&self) -> u64 {
                self.1
            }
            fn clone_box(&self) -> Box<dyn Controller> {
                Box::new(self.clone())
            }
            fn initial_window(&self) -> u64 {
                self.1
            }
            fn into_any(self: Box<Self>) -> Box<dyn Any> {
                self
            }
        }

        let (local, remote) = (Counting(Default::default(), 1), Counting(Default::default(), 2));
        let config = Arc::new(AdaptiveConfig { local: Arc::new(local.clone()), remote: Arc::new(remote.clone()) });
        let mut c = *config.build(Instant::now(), 1200).into_any().downcast::<Adaptive>().expect("an Adaptive");
        let now = Instant::now();
        let feed = |c: &mut Adaptive| {
            c.on_sent(now, 1200, 1);
            c.on_packet_sent(now, 1200, 1);
            c.on_cwnd_limited();
            c.on_end_acks(now, 0, false, Some(1));
            c.on_congestion_event(now, now, false, false, 1200, 1);
            c.on_packet_lost(1200, 1, now);
            c.on_spurious_congestion_event();
            c.on_mtu_update(1452);
            c.on_ack_frequency_update(2, Duration::from_millis(25));
        };
        let seen = |x: &Counting| x.0.load(std::sync::atomic::Ordering::SeqCst);
        feed(&mut c);
        assert_eq!((seen(&local), seen(&remote), c.window()), (9, 9, 1), "both fed; the local one rules until known");
        c.observe(Duration::from_millis(30));
        assert_eq!(c.window(), 2, "a long path: the remote one rules");
        assert_eq!(c.clone_box().window(), 2);
        c.observe(Duration::from_micros(300));
        feed(&mut c);
        assert_eq!((seen(&local), seen(&remote), c.window()), (18, 9, 1), "a local path stops feeding the other");
    }
}
