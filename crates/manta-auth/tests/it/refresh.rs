//! The refresh engine driven by a fake transport and a manual clock: schedule, single
//! flight, backoff, keeping the last good token, rotation and the UNAUTHENTICATED path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use manta_auth::{
    Error, Issuer, ManualClock, RefreshConfig, RefreshError, RefreshFuture, Refresher, SigningKey,
    TokenKind, TokenRequest, TokenSource, inspect,
};
use secrecy::{ExposeSecret as _, SecretString};

const T0: u64 = 1_800_000_000;

/// A token service: issues a new node token per call (or fails while `fail` is set).
struct Service {
    issuer: Issuer,
    calls: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
    version: AtomicUsize,
    delay: Duration,
}

impl Refresher for Service {
    fn refresh<'a>(&'a self, current: &'a SecretString) -> RefreshFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert!(
                !current.expose_secret().is_empty(),
                "the current token is presented"
            );
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(RefreshError::Unavailable("manager down".into()));
            }
            Ok(self.mint())
        })
    }
}

impl Service {
    fn mint(&self) -> SecretString {
        let v = self.version.fetch_add(1, Ordering::SeqCst) as u64;
        let req = TokenRequest::new(TokenKind::NodeIdentity, "n1")
            .node("n1", "c1", v)
            .lifetime(Duration::from_secs(1000));
        self.issuer.issue(&req).unwrap().token
    }
}

fn setup(delay: Duration) -> (ManualClock, Arc<Service>, TokenSource) {
    let clock = ManualClock::new(T0);
    let issuer = Issuer::new("m", "a", SigningKey::generate_ed25519("k").unwrap())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let svc = Arc::new(Service {
        issuer,
        calls: AtomicUsize::new(0),
        fail: false.into(),
        version: AtomicUsize::new(1),
        delay,
    });
    let mut cfg = RefreshConfig::default();
    cfg.jitter_fraction = 0.0;
    let first = svc.mint();
    let src = TokenSource::with_clock(first, svc.clone(), cfg, Arc::new(clock.clone())).unwrap();
    (clock, svc, src)
}

fn version(t: &SecretString) -> u64 {
    inspect(t.expose_secret())
        .unwrap()
        .claims
        .issued_version
        .unwrap()
}

#[tokio::test]
async fn refreshes_at_the_planned_fraction_not_before() {
    let (clock, svc, src) = setup(Duration::ZERO);
    // Lifetime 1000 s, fraction 0.75, no jitter: due at +750 s.
    assert_eq!(src.refresh_due_in(), Some(Duration::from_secs(750)));
    clock.advance(Duration::from_secs(749));
    assert_eq!(version(&src.token().await.unwrap()), 1);
    assert_eq!(svc.calls.load(Ordering::SeqCst), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(version(&src.token().await.unwrap()), 2);
    assert_eq!(svc.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn never_later_than_exp_minus_margin_and_jitter_only_moves_earlier() {
    let clock = ManualClock::new(T0);
    let issuer = Issuer::new("m", "a", SigningKey::generate_ed25519("k").unwrap())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let svc = Arc::new(Service {
        issuer,
        calls: 0.into(),
        fail: false.into(),
        version: 1.into(),
        delay: Duration::ZERO,
    });
    let mut cfg = RefreshConfig::default();
    cfg.refresh_fraction = 1.0;
    cfg.jitter_fraction = 0.0;
    cfg.margin = Duration::from_secs(100);
    let src = TokenSource::with_clock(
        svc.mint(),
        svc.clone(),
        cfg.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert_eq!(src.refresh_due_in(), Some(Duration::from_secs(900)));
    cfg.refresh_fraction = 0.75;
    cfg.jitter_fraction = 0.5;
    for _ in 0..20 {
        let src = TokenSource::with_clock(
            svc.mint(),
            svc.clone(),
            cfg.clone(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let due = src.refresh_due_in().unwrap().as_secs();
        assert!((250..=750).contains(&due), "jittered refresh point {due}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_callers_at_expiry_cause_exactly_one_refresh() {
    // Just before expiry, and just after it (the current token is presented even expired,
    // as the published node does).
    for at in [999, 1005] {
        let (clock, svc, src) = setup(Duration::from_millis(50));
        let src = Arc::new(src);
        clock.advance(Duration::from_secs(at));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let src = src.clone();
                tokio::spawn(async move { src.token().await })
            })
            .collect();
        for t in tasks {
            let token = t.await.unwrap().unwrap();
            assert_eq!(version(&token), 2, "every caller gets the refreshed token");
        }
        assert_eq!(svc.calls.load(Ordering::SeqCst), 1, "at +{at}s");
    }
}

#[tokio::test]
async fn failure_keeps_the_last_good_token_and_backs_off_within_the_lifetime() {
    let (clock, svc, src) = setup(Duration::ZERO);
    svc.fail.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(800));
    assert_eq!(
        version(&src.token().await.unwrap()),
        1,
        "last good token kept"
    );
    assert_eq!((svc.calls.load(Ordering::SeqCst), src.failures()), (1, 1));
    // Within the backoff window nobody retries.
    assert_eq!(version(&src.token().await.unwrap()), 1);
    assert_eq!(svc.calls.load(Ordering::SeqCst), 1);
    let wait = src.refresh_due_in().unwrap();
    assert!(
        wait >= Duration::from_secs(1) && wait <= Duration::from_millis(1200),
        "{wait:?}"
    );
    // Backoff grows but stays below the remaining lifetime.
    for _ in 0..12 {
        clock.advance(src.refresh_due_in().unwrap());
        let _ = src.token().await;
        let left = src
            .expires_at()
            .unwrap()
            .duration_since(clock_now(&clock))
            .unwrap_or_default();
        if !left.is_zero() {
            assert!(src.refresh_due_in().unwrap() <= left, "retry after expiry");
        }
    }
    // Once expired with the manager still down, callers get a clear error.
    clock.set(T0 + 1001);
    clock.advance(src.refresh_due_in().unwrap_or_default());
    let e = src.token().await.unwrap_err();
    assert!(
        matches!(e, Error::Refresh(RefreshError::Unavailable(_))),
        "{e:?}"
    );
    // When the manager is back, the next due attempt succeeds.
    svc.fail.store(false, Ordering::SeqCst);
    clock.advance(src.refresh_due_in().unwrap());
    assert!(version(&src.token().await.unwrap()) >= 2);
    assert_eq!(src.failures(), 0);
}

fn clock_now(c: &ManualClock) -> std::time::SystemTime {
    use manta_auth::Clock as _;
    c.now()
}

#[tokio::test]
async fn a_renewal_that_breaks_the_node_rules_is_refused() {
    struct Bad(SecretString);
    impl Refresher for Bad {
        fn refresh<'a>(&'a self, _: &'a SecretString) -> RefreshFuture<'a> {
            let t = self.0.clone();
            Box::pin(async move { Ok(t) })
        }
    }
    let clock = ManualClock::new(T0);
    let issuer = Issuer::new("m", "a", SigningKey::generate_ed25519("k").unwrap())
        .unwrap()
        .with_clock(Arc::new(clock.clone()));
    let mint = |node: &str, v: u64, life: u64| {
        issuer
            .issue(
                &TokenRequest::new(TokenKind::NodeIdentity, node)
                    .node(node, "c", v)
                    .lifetime(Duration::from_secs(life)),
            )
            .unwrap()
            .token
    };
    let current = mint("n1", 5, 1000);
    for (bad, why) in [
        (mint("n2", 6, 2000), "another node_id"),
        (mint("n1", 5, 2000), "issued_version is not greater"),
        (mint("n1", 6, 500), "does not expire later"),
        (SecretString::from(""), "empty token"),
        (SecretString::from("opaque-token"), "cannot be read"),
    ] {
        let src = TokenSource::with_clock(
            current.clone(),
            Arc::new(Bad(bad)),
            RefreshConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        clock.set(T0 + 990);
        let kept = src.token().await.unwrap();
        assert_eq!(
            kept.expose_secret(),
            current.expose_secret(),
            "{why}: old token kept"
        );
        clock.set(T0 + 1001);
        clock.advance(src.refresh_due_in().unwrap());
        let e = src.token().await.unwrap_err().to_string();
        assert!(e.contains(why), "`{e}` lacks `{why}`");
        clock.set(T0);
    }
}

#[tokio::test]
async fn rotate_token_and_unauthenticated_one_shot() {
    let (clock, svc, src) = setup(Duration::ZERO);
    clock.advance(Duration::from_secs(1));
    let rotated = svc.mint();
    src.rotate_token(rotated.clone());
    assert_eq!(src.current().expose_secret(), rotated.expose_secret());
    assert_eq!(
        svc.calls.load(Ordering::SeqCst),
        0,
        "rotation does not call the service"
    );

    // The server said UNAUTHENTICATED to `rotated`: one refresh, then retry with the result.
    clock.advance(Duration::from_secs(1));
    let fresh = src.on_unauthenticated(&rotated).await.unwrap();
    assert_ne!(fresh.expose_secret(), rotated.expose_secret());
    assert_eq!(svc.calls.load(Ordering::SeqCst), 1);
    // A late caller still holding `rotated` gets the replacement without another refresh.
    let again = src.on_unauthenticated(&rotated).await.unwrap();
    assert_eq!(again.expose_secret(), fresh.expose_secret());
    assert_eq!(svc.calls.load(Ordering::SeqCst), 1);
    // If the refreshed token is refused too, there is no second forced refresh.
    svc.fail.store(true, Ordering::SeqCst);
    let _ = src.on_unauthenticated(&fresh).await;
    let e = src.on_unauthenticated(&fresh).await.unwrap_err();
    assert!(matches!(e, Error::Refresh(RefreshError::Rejected)), "{e:?}");
    assert_eq!(svc.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn tokens_without_exp_are_never_refreshed_and_debug_is_redacted() {
    let (_clock, svc, _) = setup(Duration::ZERO);
    let src = TokenSource::new(
        SecretString::from("opaque-api-token"),
        svc.clone(),
        RefreshConfig::default(),
    )
    .unwrap();
    assert_eq!(src.refresh_due_in(), None);
    assert_eq!(
        src.token().await.unwrap().expose_secret(),
        "opaque-api-token"
    );
    assert_eq!(svc.calls.load(Ordering::SeqCst), 0);
    let dbg = format!("{src:?}");
    assert!(
        dbg.contains("[REDACTED]") && !dbg.contains("opaque-api-token"),
        "{dbg}"
    );
}

#[test]
fn config_out_of_range_is_refused() {
    let (_clock, svc, _) = setup(Duration::ZERO);
    let mut cfg = RefreshConfig::default();
    cfg.refresh_fraction = 1.5;
    let e = TokenSource::new(SecretString::from("x"), svc, cfg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("refresh_fraction must be in (0, 1]"), "{e}");
}

#[test]
fn the_refresh_schedule_is_three_quarters_of_the_life_less_jitter_and_never_past_the_margin() {
    let cfg = RefreshConfig::default();
    let hour = 3_600_000;
    assert_eq!(
        cfg.refresh_at_ms(0, hour, 0.0),
        2_700_000,
        "75 % of an hour"
    );
    assert_eq!(
        cfg.refresh_at_ms(0, hour, 1.0),
        2_340_000,
        "less 10 % of jitter"
    );
    assert_eq!(
        cfg.refresh_at_ms(1_000, 1_000 + 100_000, 0.0),
        1_000 + 40_000,
        "100 s of life: at most 60 s before expiry"
    );
    assert_eq!(
        cfg.refresh_at_ms(1_000, 1_000 + 30_000, 0.0),
        1_000 + 15_000,
        "shorter than the margin: halfway"
    );
}
