//! What a page is sent: the page itself (with the whole state inlined, for a report), and the
//! state of this rank's board with the other ranks' joined.

use super::board::{Board, Cursor, Share};
use super::ranks::Peers;

/// The page, with `state` (the whole state as JSON) inlined for a report, or none to ask the
/// server: one file, its script inlined (the task stream's, the roofline's, then the page's).
pub(super) fn page(state: Option<&str>) -> String {
    const PAGE: &str = include_str!("page.html");
    const SCRIPT: [&str; 3] = [include_str!("stream.js"), include_str!("roofline.js"), include_str!("page.js")];
    // No `</script>` or `<!--` can end or bend the inlined script: `<` appears in JSON only
    // within strings, where `\u003c` means the same.
    let data = state.map_or_else(|| "null".to_string(), |s| s.replace('<', "\\u003c"));
    PAGE.replacen("/*SCRIPT*/", &SCRIPT.concat(), 1).replacen("/*STATE*/null", &data, 1)
}

/// `board`'s state after `cursor`, with the other ranks' after `peer_cursors` (as `"ranks"`),
/// and the cursor after it. Each rank sends its share of one board's tasks, rank 0 alone its
/// samples: the whole stays within one board's size, but for each rank's few fixed rows.
/// A `share` asked for overrides rank 0's (rank 0 asks another rank for its share this way).
pub(super) fn combined(
    board: &Board,
    peers: &Peers,
    cursor: Cursor,
    share: Option<Share>,
    peer_cursors: &mut Vec<Option<Cursor>>,
) -> (String, Cursor) {
    let share = share.unwrap_or_else(|| Share::of_rank(0, peers.ranks()));
    let (mut state, next) = board.state_json(cursor, share);
    if peers.ranks() > 1 && state.ends_with('}') {
        state.pop();
        state.push_str(",\"ranks\":[");
        peers.append_states(&mut state, peer_cursors);
        if state.ends_with(',') {
            state.pop();
        }
        state.push_str("]}");
    }
    (state, next)
}
