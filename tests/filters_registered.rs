//! The filter factories are linked into programs that use the library (inventory).

#[test]
fn filter_eggs_are_registered_outside_the_library() {
    let reg = mapproxy_serve::registry::registry();
    for egg in [
        "Paste#translogger",
        "Paste#auth_basic",
        "PasteDeploy#prefix",
        "Paste#gzip",
    ] {
        assert!(reg.find(egg).is_some(), "{egg} not registered");
    }
}
