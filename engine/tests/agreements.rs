//! The agreements service on a real home: an owner can always record its own revocation, even
//! when the seeder recorded one first that has not taken effect.

use cobox_engine::agreements::{Entry, Party, Revocation};
use cobox_engine::codes::PeerAddr;
use cobox_engine::{DeviceId, Home, agreement_service};
use ed25519_dalek::SigningKey;

#[test]
fn a_seeders_revocation_not_yet_in_effect_does_not_block_the_owners() {
    let root = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let home = Home::open(root.path()).unwrap();
    home.create_space("s", folder.path()).unwrap();
    let seeder = SigningKey::from_bytes(&[8; 32]);
    let to = PeerAddr { device: DeviceId(seeder.verifying_key().to_bytes()), addrs: vec![] };
    let (proposed, _) = agreement_service::propose(root.path(), "s", &to, 1 << 30, 30, "").unwrap();
    let space = home.open_space("s").unwrap();
    let ledger = space.ledger();
    let view = ledger.view(cobox_engine::now_ms()).unwrap();
    let a = view.agreements.iter().find(|v| v.id.to_string() == proposed.id).unwrap().agreement.clone();
    ledger.insert(&Entry::accept(&a, &seeder)).unwrap();
    // The seeder revokes, dated ten minutes ahead: within the clocks' allowed skew, not yet in effect.
    let later = Revocation {
        agreement: a.id(),
        device: seeder.verifying_key().to_bytes(),
        party: Party::Seeder,
        time_ms: cobox_engine::now_ms() + 10 * 60 * 1000,
    };
    ledger.insert(&Entry::revoke(later, &seeder)).unwrap();
    assert_eq!(
        agreement_service::list(root.path(), cobox_engine::now_ms()).unwrap().agreements[0].state,
        cobox_engine::agreements::State::Active
    );
    let revoked = agreement_service::revoke(root.path(), &proposed.id).unwrap();
    assert_eq!(
        revoked.state,
        cobox_engine::agreements::State::Revoked,
        "the owner's own revocation, dated now, takes effect at once"
    );
    // Once in effect, a second revocation is refused with a clear error.
    let again = agreement_service::revoke(root.path(), &proposed.id).unwrap_err();
    assert!(again.to_string().contains("already revoked"), "{again}");
}
