//! SIGHUP puts limits in force: the connection cap follows the reloaded file.

mod support;

use std::time::Duration;

use support::{binary_config, Binary, RawSse, PUBLISH_KEY};

fn capped(max: usize) -> String {
    format!("limits:\n  max_connections: {max}\nlog:\n  level: warn\n")
}

/// Opens a stream, retrying (bounded) while it is refused as over the cap.
async fn admitted(gw: &Binary) -> RawSse {
    for _ in 0..500 {
        let sse = RawSse::open(gw.addr, "/events/cap", &[]).await;
        if sse.status == 200 {
            return sse;
        }
        assert_eq!(sse.status, 503, "{}", sse.head);
        drop(sse);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no place below the cap: {}", gw.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_connection_cap() {
    let gw = Binary::start(&capped(2)).await;
    // The start-up probe's connection may still be counted for a moment: a stream
    // below the cap is admitted once it is gone.
    let a = admitted(&gw).await;
    let b = admitted(&gw).await;
    let over = RawSse::open(gw.addr, "/events/cap", &[]).await;
    assert_eq!(over.status, 503, "the third is over the cap of 2");
    drop(over);

    std::fs::write(
        &gw.config_path,
        binary_config(gw.addr.port(), PUBLISH_KEY, &capped(3)),
    )
    .expect("rewrite");
    gw.signal("HUP");
    // The reload is asynchronous: poll (bounded) until a third stream is admitted;
    // until then each try is refused as over the cap.
    let mut third = None;
    for _ in 0..500 {
        let c = RawSse::open(gw.addr, "/events/cap", &[]).await;
        if c.status == 200 {
            third = Some(c);
            break;
        }
        assert_eq!(c.status, 503, "{}", c.head);
        drop(c);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        third.is_some(),
        "a cap of 3 in force after SIGHUP: {}",
        gw.log()
    );
    let fourth = RawSse::open(gw.addr, "/events/cap", &[]).await;
    assert_eq!(fourth.status, 503, "the fourth is over the new cap of 3");
    drop((a, b, third, fourth));
}
