use crate::Ctx;
use anyhow::Result;

pub(crate) fn run(ctx: &Ctx) -> Result<()> {
    // Read without the lock when the key exists, so `cobox id` works while the daemon runs.
    let id = match cobox_engine::Home::peek_device_id(&ctx.home)? {
        Some(id) => id,
        None => ctx.open_home()?.device_id(),
    };
    if ctx.json {
        ctx.print_json(&serde_json::json!({ "device_id": id.to_string() }))
    } else {
        println!("{id}");
        Ok(())
    }
}
