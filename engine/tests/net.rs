//! The iroh transport with real connections on loopback: through a local relay with direct
//! addresses withheld, and against a peer that sends garbage.

use cobox_engine::sync::congestion::Congestion;
use cobox_engine::sync::net::{NetConfig, Node};
use cobox_engine::{Home, NoProgress, Space};
use std::sync::Arc;
use std::time::Duration;

/// A home with one space over a folder holding `files`; returns (home dir, folder, seed, space).
fn device(
    files: &[(&str, &[u8])],
    invite_from: Option<(&std::path::Path, &cobox_engine::codes::Invite)>,
) -> (tempfile::TempDir, tempfile::TempDir, [u8; 32], Space) {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    for (p, b) in files {
        std::fs::write(folder.path().join(p), b).unwrap();
    }
    let h = Home::open(home.path()).unwrap();
    match invite_from {
        // The inviter accepts the invite as its first session would.
        Some((inviter, inv)) => {
            h.join(inv, folder.path(), None).unwrap();
            Home::join_beside(inviter, home.path(), &inv.space).unwrap()
        }
        None => drop(h.create_space("s", folder.path()).unwrap()),
    };
    let mut s = h.open_space("s").unwrap();
    s.scan(&NoProgress).unwrap();
    let seed = h.device_seed();
    drop(s);
    let s = h.open_space("s").unwrap();
    // The lock goes with `h`; the test owns the space from here on.
    drop(h);
    (home, folder, seed, s)
}

/// What [`device`] returns.
type Device = (tempfile::TempDir, tempfile::TempDir, [u8; 32], Space);

/// A device with `file` in a new space, and a second device joined by its invite.
fn pair(file: (&str, &[u8])) -> (Device, Device, cobox_engine::codes::Invite) {
    let a = device(&[file], None);
    let inv = Home::invite(a.0.path(), "s", &cobox_engine::home::InviteRequest::writer()).unwrap();
    let b = device(&[], Some((a.0.path(), &inv)));
    (a, b, inv)
}

/// Loopback only: no relay, no LAN discovery.
fn loopback() -> NetConfig {
    NetConfig { bind: Some("127.0.0.1:0".parse().unwrap()), no_relay: true, ..Default::default() }
}

/// A node's id, with no address.
fn id_of(node: &Node) -> iroh::EndpointAddr {
    iroh::EndpointAddr::new(iroh::PublicKey::from_bytes(node.device().as_bytes()).unwrap())
}

/// A node's id and the sockets it is bound to.
fn direct(node: &Node) -> iroh::EndpointAddr {
    id_of(node).with_addrs(node.bound().into_iter().map(iroh::TransportAddr::Ip))
}

/// `b` syncs from `addr` within `secs` and ends with `name` as in `from`.
async fn syncs_file(
    b: &Node,
    space: &cobox_engine::SpaceId,
    addr: iroh::EndpointAddr,
    secs: u64,
    from: &std::path::Path,
    to: &std::path::Path,
    name: &str,
) {
    let stats =
        tokio::time::timeout(Duration::from_secs(secs), b.sync_until_converged(space, addr, 4)).await.unwrap().unwrap();
    assert!(stats.received_blobs >= 2, "{stats:?}");
    assert_eq!(std::fs::read(to.join(name)).unwrap(), std::fs::read(from.join(name)).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_sync_through_a_local_relay_without_direct_addresses() {
    let (certs, server_config) = iroh_relay::server::testing::self_signed_tls_certs_and_config();
    let mut relay = iroh_relay::server::RelayConfig::new((std::net::Ipv4Addr::LOCALHOST, 0));
    relay.tls = Some(iroh_relay::server::TlsConfig::new(
        (std::net::Ipv4Addr::LOCALHOST, 0),
        iroh_relay::server::CertConfig::Manual { server_config },
    ));
    let mut config = iroh_relay::server::ServerConfig::default();
    config.relay = Some(relay);
    let server = iroh_relay::server::Server::spawn(config).await.unwrap();
    let url: iroh::RelayUrl = format!("https://{}", server.https_addr().unwrap()).parse().unwrap();
    let ((_ha, fa, seed_a, sa), (_hb, fb, seed_b, sb), _) = pair(("hello.txt", b"over the relay\n"));
    let space = sa.info().id;
    let cfg = NetConfig {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        no_relay: false,
        relay: Some(url.to_string()),
        relay_ca_der: certs.iter().map(|c| c.to_vec()).collect(),
        lan_discovery: false,
        // Loopback picks Cubic; this test also carries a whole session on BBRv3, which long and
        // lossy paths get (`sync::congestion`).
        congestion: Congestion::Bbr,
        ..NetConfig::default()
    };
    let a = Node::start(seed_a, vec![sa], &cfg).await.unwrap();
    let b = Node::start(seed_b, vec![sb], &cfg).await.unwrap();
    // Dial by id and relay URL only: no IP address of A is given to B.
    syncs_file(&b, &space, id_of(&a).with_relay_url(url.clone()), 60, fa.path(), fb.path(), "hello.txt").await;
    b.shutdown().await;
    a.shutdown().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_stalling_peers_do_not_stop_the_node() {
    let ((_ha, fa, seed_a, sa), (_hb, fb, seed_b, sb), _) = pair(("doc.txt", b"still served\n"));
    let space = sa.info().id;
    let cfg = loopback();
    let a = Node::start(seed_a, vec![sa], &cfg).await.unwrap();
    let a_addr = direct(&a);

    // A stranger connects with the right ALPN: one stalls, one claims a 4 GiB frame, one sends noise.
    let stranger = cobox_engine::sync::net::endpoint([42; 32], &cfg).await.unwrap();
    let alpn = cobox_engine::sync::proto::ALPN;
    let stall = stranger.connect(a_addr.clone(), alpn).await.unwrap();
    let (mut s1, _r1) = stall.open_bi().await.unwrap();
    s1.write_all(&[1, 0]).await.unwrap();
    let huge = stranger.connect(a_addr.clone(), alpn).await.unwrap();
    let (mut s2, mut r2) = huge.open_bi().await.unwrap();
    s2.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), r2.read_to_end(1 << 16)).await.unwrap();
    assert!(answer.map(|b| b.len() < 1000).unwrap_or(true), "a refusal at most, never a huge reply");
    let noise = stranger.connect(a_addr.clone(), alpn).await.unwrap();
    let (mut s3, _r3) = noise.open_bi().await.unwrap();
    s3.write_all(&[8, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]).await.unwrap();

    // A member still syncs while the staller is connected.
    let b = Node::start(seed_b, vec![sb], &cfg).await.unwrap();
    syncs_file(&b, &space, a_addr, 30, fa.path(), fb.path(), "doc.txt").await;
    drop((stall, huge, noise));
    b.shutdown().await;
    a.shutdown().await;
    stranger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_on_one_lan_find_each_other_by_id_alone() {
    let ((_ha, fa, seed_a, sa), (_hb, fb, seed_b, sb), _) = pair(("lan.txt", b"found by mDNS\n"));
    let space = sa.info().id;
    // No relay, no address given: only mDNS can tell B where A is.
    let cfg = NetConfig { no_relay: true, lan_discovery: true, ..Default::default() };
    let a = Node::start(seed_a, vec![sa], &cfg).await.unwrap();
    let b = Node::start(seed_b, vec![sb], &cfg).await.unwrap();
    syncs_file(&b, &space, id_of(&a), 60, fa.path(), fb.path(), "lan.txt").await;
    b.shutdown().await;
    a.shutdown().await;
}

/// A ledger grows with every audit: a session between devices whose ledgers already match
/// sends none of it, and one after a change sends only the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgers_send_only_what_the_peer_lacks() {
    let ((_ha, _fa, seed_a, sa), (_hb, _fb, seed_b, sb), _) = pair(("a.txt", b"ledger test\n"));
    let space = sa.info().id;
    // 60 proposals with long terms: a ledger of over 50 KB.
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let propose = |i: u8| {
        let agreement = cobox_agreements::Agreement {
            space: space.0,
            owner: key.verifying_key().to_bytes(),
            seeder: [i; 32],
            quota: 1 << 30,
            start_ms: 0,
            end_ms: i64::MAX,
            terms: {
                // Incompressible terms, so the ledger's size is its entries'.
                let mut noise = [0u8; 900];
                blake3::Hasher::new().update(&[i]).finalize_xof().fill(&mut noise);
                hex::encode(noise)
            },
            nonce: [i; 16],
        };
        cobox_agreements::Entry::propose(agreement, &key)
    };
    for i in 0..60 {
        sa.ledger().insert(&propose(i)).unwrap();
    }
    let ledger_len = sa.ledger().read().unwrap().save().len() as u64;
    assert!(ledger_len > 50_000, "{ledger_len}");
    let (ledger_a, ledger_b) = (sa.ledger(), sb.ledger());
    let a = Node::start(seed_a, vec![sa], &loopback()).await.unwrap();
    let b = Node::start(seed_b, vec![sb], &loopback()).await.unwrap();
    let a_addr = direct(&a);
    let first = b.sync_once(&space, a_addr.clone()).await.unwrap();
    assert!(first.wire_bytes > ledger_len, "the first session carries the ledger: {first:?}");
    assert_eq!(ledger_b.read().unwrap().digest(), ledger_a.read().unwrap().digest());
    let again = b.sync_once(&space, a_addr.clone()).await.unwrap();
    assert!(again.wire_bytes < 4_000, "nothing changed, so no ledger: {again:?}");
    // One new entry on A (about 2 KB): the next session sends that entry, not the ledger.
    ledger_a.insert(&propose(200)).unwrap();
    let changed = b.sync_once(&space, a_addr.clone()).await.unwrap();
    assert!(changed.wire_bytes < 8_000, "only what B lacked: {changed:?}");
    // Agreement entries (the ledger also holds the two devices' roster operations and the
    // heads notes B made before its sessions).
    let entries = |l: &cobox_engine::ledger::LedgerFile| {
        let l = l.read().unwrap();
        l.len() - l.roster_ops().len() - l.heads_notes().len()
    };
    assert_eq!(entries(&ledger_b), 61);
    assert_eq!(ledger_b.read().unwrap().digest(), ledger_a.read().unwrap().digest());
    // B (the dialer) ahead: only what A lacks.
    ledger_b.insert(&propose(201)).unwrap();
    let pushed = b.sync_once(&space, a_addr.clone()).await.unwrap();
    assert!(pushed.wire_bytes < 8_000, "{pushed:?}");
    // Each one ahead of the other: the heads' parents in Hello still tell each what to send.
    ledger_a.insert(&propose(202)).unwrap();
    ledger_b.insert(&propose(203)).unwrap();
    let diverged = b.sync_once(&space, a_addr.clone()).await.unwrap();
    assert!(diverged.wire_bytes < 12_000, "{diverged:?}");
    assert_eq!(entries(&ledger_a), 64);
    assert_eq!(ledger_b.read().unwrap().digest(), ledger_a.read().unwrap().digest());
    let settled = b.sync_once(&space, a_addr).await.unwrap();
    assert!(settled.wire_bytes < 4_000, "{settled:?}");
    b.shutdown().await;
    a.shutdown().await;
}

/// Frames for a hand-driven session (the test plays a member that breaks the transfer rules).
async fn send_msg(s: &mut iroh::endpoint::SendStream, m: &cobox_engine::sync::proto::Msg) {
    s.write_all(&m.frame().unwrap()).await.unwrap();
}

async fn recv_msg(r: &mut iroh::endpoint::RecvStream) -> cobox_engine::sync::proto::Msg {
    let mut h = [0u8; 4];
    r.read_exact(&mut h).await.unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(h) as usize];
    r.read_exact(&mut body).await.unwrap();
    cobox_engine::sync::proto::Msg::decode(&body).unwrap()
}

/// A member (it holds the space secret) that follows the protocol up to the transfer, then
/// announces `lanes` and, when it opens one, sends a blob nobody asked for on it. The node
/// must refuse, say why, and go on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_breaking_the_lane_rules_is_refused() {
    use cobox_engine::sync::proto::{ALPN, Msg, Purpose, Role, prove};
    let ((_ha, fa, seed_a, sa), (_hb, fb, seed_b, sb), _) = pair(("kept.txt", b"still served\n"));
    let space = sa.info().id;
    let secret = std::fs::read(cobox_engine::home::paths::space(_ha.path(), &space).join("secret.key")).unwrap();
    let space_key = ed25519_dalek::SigningKey::from_bytes(&secret[..32].try_into().unwrap());
    let cfg = loopback();
    // A member on the roster (A's manager added it), so only the transfer rules stop it.
    let rogue_id = ed25519_dalek::SigningKey::from_bytes(&[66; 32]).verifying_key().to_bytes();
    let add =
        cobox_engine::roster::Action::Add { device: rogue_id, role: cobox_engine::roster::Role::Write, name: vec![] };
    sa.ledger().add_roster_op(&ed25519_dalek::SigningKey::from_bytes(&seed_a), add, None).unwrap();
    let a = Node::start(seed_a, vec![sa], &cfg).await.unwrap();
    let a_addr = direct(&a);
    for (lanes, expect) in [(200u8, "unexpected message"), (1, "unrequested blob")] {
        let rogue = cobox_engine::sync::net::endpoint([66; 32], &cfg).await.unwrap();
        let me = cobox_engine::DeviceId(*rogue.id().as_bytes());
        let conn = rogue.connect(a_addr.clone(), ALPN).await.unwrap();
        let (mut s, mut r) = conn.open_bi().await.unwrap();
        let hello = Msg::Hello {
            space,
            device: me,
            nonce: [1; 32],
            role: Role::Member,
            purpose: Purpose::Sync,
            listen: Vec::new(),
            ledger: Vec::new(),
        };
        send_msg(&mut s, &hello).await;
        let Msg::Hello { nonce, .. } = recv_msg(&mut r).await else { panic!("no Hello") };
        send_msg(&mut s, &prove(&space_key, &space, &me, &a.device(), &nonce, Vec::new())).await;
        assert!(matches!(recv_msg(&mut r).await, Msg::Proof { .. }));
        // Member to member, the ledger goes dialer, listener, dialer; ours is empty.
        send_msg(&mut s, &Msg::Ledger(Vec::new())).await;
        assert!(matches!(recv_msg(&mut r).await, Msg::Ledger(_)));
        send_msg(&mut s, &Msg::Ledger(Vec::new())).await;
        // Hold nothing and want nothing: the node will want nothing from us either.
        let mut rec = cobox_engine::sync::reconcile::Reconciler::new(Default::default());
        send_msg(&mut s, &Msg::Reconcile { items: rec.start(), more: false }).await;
        loop {
            let Msg::Reconcile { items, more: false } = recv_msg(&mut r).await else { panic!("expected Reconcile") };
            if items.is_empty() {
                break;
            }
            let out = rec.respond(&items);
            let done = out.is_empty();
            send_msg(&mut s, &Msg::Reconcile { items: out, more: false }).await;
            if done {
                break;
            }
        }
        send_msg(&mut s, &Msg::Want { ids: Vec::new(), more: false }).await;
        assert_eq!(recv_msg(&mut r).await, Msg::Want { ids: Vec::new(), more: false });
        // Our turn to send: break the rules.
        send_msg(&mut s, &Msg::Lanes(lanes)).await;
        if lanes == 1 {
            let mut lane = conn.open_uni().await.unwrap();
            let junk =
                Msg::Blob { id: cobox_engine::BlobId(*blake3::hash(b"junk").as_bytes()), data: b"junk".to_vec() };
            send_msg(&mut lane, &junk).await;
        }
        let answer = tokio::time::timeout(Duration::from_secs(20), recv_msg(&mut r)).await.unwrap();
        let Msg::Refused { reason, .. } = answer else { panic!("not refused: {answer:?}") };
        assert!(reason.contains(expect), "{reason}");
        conn.close(0u32.into(), b"done");
        rogue.close().await;
    }
    // The node still serves members.
    let b = Node::start(seed_b, vec![sb], &cfg).await.unwrap();
    syncs_file(&b, &space, a_addr, 30, fa.path(), fb.path(), "kept.txt").await;
    b.shutdown().await;
    a.shutdown().await;
}

/// A first sync of thousands of small files, the shape of a source tree or a mail folder. Each
/// small blob used to go out in its own small packet, and while the receiver paused reading
/// (planning the files) noq failed the connection: "too many gaps in stream buffer".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_small_files_sync_in_one_go() {
    let (home_a, fa) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let n = 12000;
    for i in 0..n {
        let dir = fa.path().join(format!("d{:02}", i / 1000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i:05}.txt")), format!("small file {i}\n").repeat(1 + i % 9)).unwrap();
    }
    let h = Home::open(home_a.path()).unwrap();
    h.create_space("s", fa.path()).unwrap();
    let mut sa = h.open_space("s").unwrap();
    sa.scan(&NoProgress).unwrap();
    let seed_a = h.device_seed();
    drop(h);
    let inv = Home::invite(home_a.path(), "s", &cobox_engine::home::InviteRequest::writer()).unwrap();
    let (_hb, fb, seed_b, sb) = device(&[], Some((home_a.path(), &inv)));
    let space = sa.info().id;
    let cfg = loopback();
    let a = Node::start(seed_a, vec![sa], &cfg).await.unwrap();
    let b = Node::start(seed_b, vec![sb], &cfg).await.unwrap();
    // One session, no retries: the first must carry everything.
    let stats = tokio::time::timeout(Duration::from_secs(240), b.sync_once(&space, direct(&a))).await.unwrap().unwrap();
    assert!(stats.received_blobs > n as u64, "{stats:?}");
    for i in (0..n).step_by(97).chain([n - 1]) {
        let rel = format!("d{:02}/f{i:05}.txt", i / 1000);
        assert_eq!(std::fs::read(fb.path().join(&rel)).unwrap(), std::fs::read(fa.path().join(&rel)).unwrap(), "{rel}");
    }
    b.shutdown().await;
    a.shutdown().await;
}

/// A member is removed after a real sync; a file written after the removal is sealed under a
/// new key epoch that no key the removed device holds opens: its space secret's, every epoch
/// key it can open from the whole roster (as a seeder holds it), and its invite's, each tried
/// in the new epoch's place. What it held before stays readable to it, as docs/security.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_added_after_a_removal_is_unreadable_with_every_key_the_removed_device_holds() {
    use cobox_engine::crypto::{BlobKind, OpenError, SpaceKeys, blob_epoch, blob_kind};
    use cobox_engine::replica::Replica;
    let ((ha, fa, seed_a, sa), (hb, _fb, seed_b, sb), _) = pair(("before.txt", b"written before\n"));
    let space = sa.info().id;
    let a = Node::start(seed_a, vec![sa], &loopback()).await.unwrap();
    let b = Node::start(seed_b, vec![sb], &loopback()).await.unwrap();
    b.sync_until_converged(&space, direct(&a), 6).await.unwrap();
    b.shutdown().await;
    a.shutdown().await;
    let b_key = ed25519_dalek::SigningKey::from_bytes(&seed_b);
    let b_id = hex::encode(b_key.verifying_key().to_bytes());
    cobox_engine::members::remove(ha.path(), "s", &b_id[..8]).unwrap();
    const AFTER: &[u8] = b"written after the removal: not for the removed device\n";
    std::fs::write(fa.path().join("after.txt"), AFTER).unwrap();
    let home_a = Home::open(ha.path()).unwrap();
    let mut a = home_a.open_space("s").unwrap();
    a.scan(&NoProgress).unwrap();

    let view = a.ledger().roster().unwrap();
    let epoch = view.current_epoch;
    assert_ne!(epoch, 0, "the removal drew a new epoch");
    let b_dir = cobox_engine::home::paths::space(hb.path(), &space);
    let secret: [u8; 64] = std::fs::read(b_dir.join("secret.key")).unwrap().try_into().unwrap();
    let invite = cobox_engine::ledger::invite_key_at(&b_dir);
    assert!(invite.is_some(), "it joined by an invite, whose key it kept");
    let held = cobox_engine::ledger::epoch_keys(&space, &secret, &view, &b_key, invite.as_ref());
    assert!(!held.contains_key(&epoch), "no sealing of the new epoch opens for it");
    let (b_keys, missing) = cobox_engine::ledger::space_keys(&space, &secret, &view, &b_key, invite.as_ref());
    assert_eq!(missing, Some(epoch));
    let (a_keys, _) = cobox_engine::ledger::space_keys(
        &space,
        &std::fs::read(cobox_engine::home::paths::space(ha.path(), &space).join("secret.key"))
            .unwrap()
            .try_into()
            .unwrap(),
        &view,
        &ed25519_dalek::SigningKey::from_bytes(&seed_a),
        None,
    );
    let mut root = [0u8; 32];
    root.copy_from_slice(&secret[32..]);
    let mut candidates: Vec<[u8; 32]> = held.values().copied().collect();
    candidates.extend([root, *secret[..32].first_chunk::<32>().unwrap(), invite.unwrap().to_bytes(), seed_b]);
    let (mut new_blobs, mut tries) = (0, 0);
    for id in a.blob_ids().unwrap() {
        let blob = a.read_blob(&id).unwrap();
        if blob_epoch(&blob) != Ok(epoch) {
            continue;
        }
        new_blobs += 1;
        let kind = blob_kind(&blob).unwrap();
        assert!(a_keys.open(kind, &blob).is_ok(), "the manager reads it");
        assert_eq!(b_keys.open(kind, &blob), Err(OpenError::UnknownEpoch(epoch)));
        for k in &candidates {
            let mut as_new = SpaceKeys::derive(&root);
            as_new.add_epoch(epoch, k);
            assert!(as_new.set_current(epoch));
            assert_eq!(as_new.open(kind, &blob), Err(OpenError::Auth), "no key it holds opens it");
            tries += 1;
        }
        if kind == BlobKind::Chunk {
            assert!(!blob.windows(AFTER.len()).any(|w| w == AFTER), "no plaintext in the blob");
        }
    }
    assert!(new_blobs >= 2, "the new file's chunk and the change recording it: {new_blobs}");
    assert!(tries >= 2 * candidates.len());
    // What it held before the removal still opens with its keys (removal cannot undo that).
    let before = a.blob_ids().unwrap().into_iter().map(|id| a.read_blob(&id).unwrap());
    assert!(before.filter(|b| blob_epoch(b) == Ok(0)).all(|b| b_keys.open(blob_kind(&b).unwrap(), &b).is_ok()));
}

/// A transfer's progress is known while it runs: blobs asked for from the start, blobs and
/// bytes in as they arrive (the app's estimate), and it is gone when the transfer ends. The
/// receiver's download limit (1 MB/s) keeps it running long enough to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_reports_what_it_asked_for_and_what_arrived() {
    // Incompressible, so the chunks are as big on the wire as on disk.
    let mut big = vec![0u8; 3 << 20];
    blake3::Hasher::new().update(b"transfer").finalize_xof().fill(&mut big);
    let ((_ha, _fa, seed_a, sa), (_hb, _fb, seed_b, sb), _) = pair(("big.bin", &big));
    let space = sa.info().id;
    let a = Node::start(seed_a, vec![sa], &loopback()).await.unwrap();
    let slow = NetConfig { limit_down: 1_000_000, ..loopback() };
    let b = Arc::new(Node::start(seed_b, vec![sb], &slow).await.unwrap());
    let addr = direct(&a);
    let syncing = {
        let b = b.clone();
        tokio::spawn(async move { b.sync_once(&space, addr).await })
    };
    let mut seen = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.is_none() && tokio::time::Instant::now() < deadline {
        // The chunks' phase (the changes and chunk lists come first, in a phase of their own).
        seen = b.receiving().into_iter().find(|r| r.space == space && r.got > 0 && r.got < r.wanted && r.wanted >= 3);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mid = seen.expect("a transfer in progress was reported");
    assert!(mid.bytes > 0 && mid.eta_ms(cobox_engine::now_ms()).is_some(), "{mid:?}");
    let stats = syncing.await.unwrap().unwrap();
    assert!(stats.received_blobs >= mid.wanted, "the total was known before the first blob: {stats:?} {mid:?}");
    assert!(b.receiving().is_empty(), "nothing left running");
    a.shutdown().await;
}

/// A sync a person asks for converges in one call ([`cobox_engine::ops::sync`], which `cobox
/// sync`, the API, the app's "Sync now" and the daemon's schedule all call). Both devices edit
/// one file apart; the session that brings each the other's edit makes each settle the conflict
/// in a change of its own, which only a further session carries across. One call ends with both
/// holding the same history. Before: the app's "Sync now" and the daemon ran one session, so
/// the peer got the settled conflict only at the next scheduled sync (issue 34).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_asked_for_converges_in_one_call() {
    use cobox_engine::ops::{SyncOptions, sync};
    let ((_ha, fa, seed_a, sa), (hb, fb, seed_b, sb), _) = pair(("x.txt", b"base"));
    let id = sa.info().id;
    let a = Node::start(seed_a, vec![sa], &loopback()).await.unwrap();
    let b = Node::start(seed_b, vec![sb], &loopback()).await.unwrap();
    let peer_a = cobox_engine::codes::PeerAddr {
        device: a.device(),
        addrs: a.bound().iter().map(ToString::to_string).collect(),
    };
    let asked = SyncOptions::asked(vec![peer_a]);
    let first = sync(&b, hb.path(), &id, &asked).await.unwrap();
    assert!(first[0].result.is_ok(), "{first:?}");
    assert_eq!(std::fs::read(fb.path().join("x.txt")).unwrap(), b"base");
    std::fs::write(fa.path().join("x.txt"), b"A's edit").unwrap();
    std::fs::write(fb.path().join("x.txt"), b"B's edit, longer").unwrap();
    for (node, _) in [(&a, 0), (&b, 1)] {
        node.space(&id).unwrap().run(|s| s.scan(&NoProgress)).await.unwrap().unwrap();
    }
    let runs = sync(&b, hb.path(), &id, &asked).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].result.is_ok() && runs[0].moved(), "{runs:?}");
    let history = |node: &Node| {
        let s = node.space(&id).unwrap();
        let ids: std::collections::BTreeSet<String> =
            s.run_blocking(|s| s.history(None)).unwrap().unwrap().into_iter().map(|h| h.id).collect();
        ids
    };
    let (ha, hb2) = tokio::task::block_in_place(|| (history(&a), history(&b)));
    assert_eq!(ha, hb2, "both hold every settling change after one call");
    let copies = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("sync-conflict"))
            .count()
    };
    assert_eq!((copies(fa.path()), copies(fb.path())), (1, 1), "one conflict copy on each, the same");
    a.shutdown().await;
    b.shutdown().await;
}
