//! Events find their table by name: track events by the table their event
//! name becomes (several names can become one table), others by kind; a
//! table none of whose events could be read gets no file.

mod support;

use bytes::Bytes;
use sluice_events::proto::EventType;
use sluice_transcoder::transcode;
use support::{Table, archive, other, s, track};

#[test]
fn names_of_one_table_share_it_and_rejected_events_make_no_table() {
    let mut page = other("p1", EventType::Page);
    page.properties_json = r#"{"path":"/home"}"#.into();
    let events = vec![
        track("a1", "Product Viewed", r#"{"sku":"a"}"#),
        track("r1", "Never Read", r#"{"sku":"#),
        page,
        track("a2", "product_viewed", r#"{"sku":"b","qty":2}"#),
        track("b1", "Signed Up", r#"{"plan":"pro"}"#),
        track("a3", "Product Viewed", r#"{"qty":3}"#),
    ];
    let (key, body) = archive(100, &[events]);
    let output = transcode(&key, &body).unwrap();
    let tables: Vec<&str> = output.files.iter().map(|f| f.load.table.as_str()).collect();
    assert_eq!(
        tables,
        ["tracks", "product_viewed", "signed_up", "pages", "rejected"]
    );
    let read = |table: &str| {
        let file = output.files.iter().find(|f| f.load.table == table).unwrap();
        Table::read(Bytes::clone(&file.body))
    };
    let viewed = read("product_viewed");
    assert_eq!(viewed.strings("id"), [s("a1"), s("a2"), s("a3")]);
    assert_eq!(
        viewed.strings("event_text"),
        [
            s("Product Viewed"),
            s("product_viewed"),
            s("Product Viewed")
        ]
    );
    assert_eq!(viewed.strings("sku"), [s("a"), s("b"), None]);
    assert_eq!(viewed.ints("qty"), [None, Some(2), Some(3)]);
    assert_eq!(read("signed_up").strings("plan"), [s("pro")]);
    assert_eq!(read("pages").strings("path"), [s("/home")]);
    assert_eq!(read("rejected").strings("id"), [s("r1")]);
}
