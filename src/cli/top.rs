//! `leader top`: a live view of the cluster, one row per server (role, term, leader, indexes,
//! lag, last contact, writes/s), redrawn in place every interval until q or Ctrl-C. Columns
//! that do not fit a narrow terminal are left out, least useful first. When standard output is
//! not a terminal, frames are printed one after another (plain text, no escape codes).

use super::status::{self, Answer};
use super::EXIT_FAILURE;
use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyModifiers};
use crossterm::{cursor, execute, terminal};
use leader::client::Client;
use leader::config::Config;
use leader::core::{NodeId, Role};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// One server's row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The server.
    pub pid: NodeId,
    /// Its answer's fields, or why it did not answer.
    pub view: Result<View, String>,
}

/// What a server that answered shows.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    /// Role.
    pub role: Role,
    /// Term.
    pub term: u64,
    /// The leader it follows.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Entries behind the highest commit index any server reported.
    pub lag: u64,
    /// A follower: ms since it heard from its leader; a leader: ms since its least recently
    /// heard follower (the one about to be lost). None when unknown.
    pub contact_ms: Option<u64>,
    /// Entries applied per second since the previous frame.
    pub writes_per_s: Option<f64>,
}

/// The rows of one frame from every server's answer; `previous` (the last frame's applied
/// indexes and how long ago it was taken) gives the rates.
pub fn rows(answers: &[(NodeId, Answer)], previous: Option<(&[Row], Duration)>) -> Vec<Row> {
    let top_commit = answers.iter().filter_map(|(_, a)| a.as_ref().ok()).map(|(s, _)| s.commit_index.0).max();
    answers
        .iter()
        .map(|(pid, answer)| {
            let view = answer.as_ref().map_err(|e| e.to_string()).map(|(s, inspection)| {
                let contact = inspection.as_ref().and_then(|i| {
                    let heard = |p: NodeId| i.last_contact.iter().find(|c| c.pid == p).map(|c| c.ms_ago);
                    match s.role {
                        Role::Follower => s.leader.and_then(heard),
                        Role::Leader => i.last_contact.iter().map(|c| c.ms_ago).max(),
                        Role::Candidate => None,
                    }
                });
                let before = previous.and_then(|(rows, dt)| {
                    let row = rows.iter().find(|r| r.pid == *pid)?;
                    let applied = row.view.as_ref().ok()?.applied;
                    Some(s.last_applied.0.saturating_sub(applied) as f64 / dt.as_secs_f64().max(1e-3))
                });
                View {
                    role: s.role,
                    term: s.term.0,
                    leader: s.leader,
                    commit: s.commit_index.0,
                    applied: s.last_applied.0,
                    lag: top_commit.unwrap_or(0).saturating_sub(s.last_applied.0),
                    contact_ms: contact,
                    writes_per_s: before,
                }
            });
            Row { pid: *pid, view }
        })
        .collect()
}

/// A column: header, width, and how early it is dropped when the terminal is narrow (higher
/// drops first).
struct Column {
    header: &'static str,
    width: usize,
    drop_rank: u8,
    cell: fn(&View) -> String,
}

const COLUMNS: [Column; 8] = [
    Column { header: "STATE", width: 9, drop_rank: 0, cell: |v| v.role.as_str().into() },
    Column { header: "TERM", width: 6, drop_rank: 1, cell: |v| v.term.to_string() },
    Column { header: "LEADER", width: 6, drop_rank: 1, cell: |v| v.leader.map_or("-".into(), |l| l.to_string()) },
    Column { header: "LAG", width: 7, drop_rank: 2, cell: |v| v.lag.to_string() },
    Column {
        header: "WRITES/S",
        width: 9,
        drop_rank: 2,
        cell: |v| v.writes_per_s.map_or("-".into(), |w| format!("{w:.0}")),
    },
    Column { header: "CONTACT", width: 8, drop_rank: 3, cell: |v| v.contact_ms.map_or("-".into(), status::ago) },
    Column { header: "COMMIT", width: 9, drop_rank: 4, cell: |v| v.commit.to_string() },
    Column { header: "APPLIED", width: 9, drop_rank: 5, cell: |v| v.applied.to_string() },
];

/// The frame's text for a terminal `width` columns wide: a title line, a header, a row per
/// server. Lines never exceed `width` (the title and error text are cut).
pub fn render(title: &str, rows: &[Row], width: usize) -> Vec<String> {
    const PID_WIDTH: usize = 4;
    let mut shown: Vec<&Column> = COLUMNS.iter().collect();
    let line_width = |cols: &[&Column]| PID_WIDTH + cols.iter().map(|c| c.width + 1).sum::<usize>();
    while line_width(&shown) > width && shown.len() > 1 {
        let worst = (0..shown.len()).max_by_key(|&i| (shown[i].drop_rank, i)).expect("a column");
        shown.remove(worst);
    }
    let cut = |s: String| s.chars().take(width).collect::<String>();
    let mut lines = vec![cut(title.to_string())];
    let mut header = format!("{:<PID_WIDTH$}", "PID");
    for c in &shown {
        header += &format!(" {:>w$}", c.header, w = c.width);
    }
    lines.push(cut(header));
    for row in rows {
        let mut line = format!("{:<PID_WIDTH$}", row.pid.0);
        match &row.view {
            Ok(view) => {
                for c in &shown {
                    line += &format!(" {:>w$}", (c.cell)(view), w = c.width);
                }
            }
            Err(e) => line += &format!(" {e}"),
        }
        lines.push(cut(line));
    }
    lines
}

/// Puts the terminal back however `top` ends.
struct Screen;

impl Screen {
    fn enter() -> std::io::Result<Screen> {
        terminal::enable_raw_mode()?;
        execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(Screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

/// Whether `key` asks to quit: q, Esc, or Ctrl-C (raw mode delivers it as a key).
fn quits(key: KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc)
        || (key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL))
}

/// Run the live view: every `interval`, ask every server and redraw; stop on q/Ctrl-C, or
/// after `count` frames when given.
pub fn run(config: Config, interval: Duration, count: Option<u64>) -> Result<(), i32> {
    let path = config.path.display().to_string();
    let mut client = Client::new(config).with_timeout(interval.min(Duration::from_millis(500)));
    let interactive = std::io::stdout().is_terminal();
    let _screen = match interactive {
        true => Some(Screen::enter().map_err(|e| {
            eprintln!("leader top: cannot use the terminal: {e}");
            EXIT_FAILURE
        })?),
        false => None,
    };
    let mut previous: Option<(Vec<Row>, Instant)> = None;
    let mut frames = 0u64;
    loop {
        let answers = status::gather(&mut client);
        let now = Instant::now();
        let rows = rows(&answers, previous.as_ref().map(|(r, t)| (r.as_slice(), now - *t)));
        let clock = humantime_now();
        let quit_hint = if interactive { " — q quits" } else { "" };
        let title = format!("leader top — {path} — {clock}{quit_hint}");
        let width = match interactive {
            // A pseudo-terminal nobody sized reports 0 columns: treat it as 80.
            true => terminal::size().ok().filter(|(w, _)| *w > 0).map_or(80, |(w, _)| w as usize),
            false => std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(80),
        };
        let lines = render(&title, &rows, width);
        let mut out = std::io::stdout().lock();
        let written = match interactive {
            true => execute!(out, cursor::MoveTo(0, 0), terminal::Clear(terminal::ClearType::All))
                .and_then(|()| write!(out, "{}", lines.join("\r\n")))
                .and_then(|()| out.flush()),
            false => writeln!(out, "{}\n", lines.join("\n")),
        };
        if written.is_err() {
            return Ok(()); // the reader went away (a closed pipe): nothing more to show
        }
        drop(out);
        previous = Some((rows, now));
        frames += 1;
        if count.is_some_and(|c| frames >= c) {
            return Ok(());
        }
        if wait_or_quit(interactive, interval) {
            return Ok(());
        }
    }
}

/// Wait `interval`; in a terminal, return early (true) when a key asks to quit.
fn wait_or_quit(interactive: bool, interval: Duration) -> bool {
    if !interactive {
        std::thread::sleep(interval); // nothing to await: the next frame is due at a time
        return false;
    }
    let deadline = Instant::now() + interval;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match event::poll(left) {
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) if quits(key) => return true,
                Ok(_) => {}
                Err(_) => return true,
            },
            Ok(false) => return false,
            Err(_) => return true,
        }
    }
    false
}

/// The wall-clock time of day (UTC) as HH:MM:SS.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02} UTC", secs / 3600 % 24, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(role: Role, applied: u64) -> Result<View, String> {
        Ok(View {
            role,
            term: 3,
            leader: Some(NodeId(1)),
            commit: applied,
            applied,
            lag: 0,
            contact_ms: Some(40),
            writes_per_s: Some(1234.4),
        })
    }

    #[test]
    fn a_row_per_server_and_narrow_terminals_drop_the_least_useful_columns() {
        let rows = vec![
            Row { pid: NodeId(1), view: view(Role::Leader, 100) },
            Row { pid: NodeId(2), view: view(Role::Follower, 90) },
            Row { pid: NodeId(3), view: Err("unreachable".into()) },
        ];
        let wide = render("t", &rows, 120);
        assert_eq!(wide[1], "PID      STATE   TERM LEADER     LAG  WRITES/S  CONTACT    COMMIT   APPLIED");
        assert_eq!(wide[2], "1       leader      3      1       0      1234    40 ms       100       100");
        assert_eq!(wide[4], "3    unreachable");
        let narrow = render("a long title that does not fit", &rows, 40);
        assert_eq!(narrow[1], "PID      STATE   TERM LEADER     LAG");
        assert!(narrow.iter().all(|l| l.chars().count() <= 40), "{narrow:#?}");
        let tiny = render("t", &rows, 10);
        assert_eq!(tiny[1], "PID      S", "one column left, cut at the edge");
    }

    #[test]
    fn lag_is_behind_the_highest_commit_and_rates_come_from_the_previous_frame() {
        use leader::client::CallError;
        use leader::core::{LogIndex, Term};
        use leader::transport::client_wire::Status;
        let status = |pid, role, commit, applied| Status {
            pid: NodeId(pid),
            role,
            term: Term(2),
            leader: Some(NodeId(1)),
            voted_for: None,
            commit_index: LogIndex(commit),
            last_applied: LogIndex(applied),
            last_index: LogIndex(commit),
        };
        let frame = |applied: u64| -> Vec<(NodeId, Answer)> {
            vec![
                (NodeId(1), Ok((status(1, Role::Leader, applied, applied), None))),
                (NodeId(2), Ok((status(2, Role::Follower, applied - 5, applied - 10), None))),
                (NodeId(3), Err(CallError::Unreachable)),
            ]
        };
        let first = rows(&frame(100), None);
        assert_eq!(first[1].view.as_ref().unwrap().lag, 10);
        assert_eq!(first[0].view.as_ref().unwrap().writes_per_s, None);
        assert_eq!(first[2].view, Err("unreachable".into()));
        let second = rows(&frame(300), Some((&first, Duration::from_millis(500))));
        assert_eq!(second[0].view.as_ref().unwrap().writes_per_s, Some(400.0));
        assert_eq!(second[1].view.as_ref().unwrap().writes_per_s, Some(400.0));
    }

    #[test]
    fn quit_keys() {
        let key = |code, modifiers| KeyEvent::new(code, modifiers);
        assert!(quits(key(KeyCode::Char('q'), KeyModifiers::NONE)));
        assert!(quits(key(KeyCode::Char('c'), KeyModifiers::CONTROL)));
        assert!(!quits(key(KeyCode::Char('c'), KeyModifiers::NONE)));
    }
}
