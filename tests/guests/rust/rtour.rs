//! A tour of Rust's std as a WASI command (tests/guests/rust).
//!
//! Usage: rtour [panic] EXIT_CODE [WORDS...] < lines
//!
//! Works in its current directory (on WASI: the preopen mapped to ".").
//! Prints a deterministic transcript to stdout so the wasm32-wasi build and a
//! native build of the same source can be compared byte for byte; leaves
//! `report.txt` and `work/` behind for the host to inspect. With `panic`
//! as the first argument it panics after the file work (a trap on WASI).
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut rest: Vec<&str> = args[1..].iter().map(|s| s.as_str()).collect();
    let panic = rest.first() == Some(&"panic");
    if panic {
        rest.remove(0);
    }
    let code: i32 = rest.first().and_then(|s| s.parse().ok()).unwrap_or(0);
    let stdout = io::stdout();
    let mut out = stdout.lock();

    // Arguments (argv[0] differs between builds, so it is not printed).
    writeln!(out, "argc={}", args.len()).unwrap();
    for (i, a) in args.iter().enumerate().skip(1) {
        writeln!(out, "arg[{}]={}", i, a).unwrap();
    }

    // Environment: only RT_* names, sorted (the native run has more).
    let env: BTreeMap<String, String> = std::env::vars().filter(|(k, _)| k.starts_with("RT_")).collect();
    for (k, v) in &env {
        writeln!(out, "env {}={}", k, v).unwrap();
    }
    writeln!(out, "RT_MISSING set: {}", std::env::var("RT_MISSING").is_ok()).unwrap();

    // stdin lines -> stdout, with a running word count.
    let mut words = 0;
    let mut nlines = 0;
    for line in io::stdin().lock().lines() {
        let line = line.expect("stdin is valid UTF-8");
        nlines += 1;
        words += line.split_whitespace().count();
        writeln!(out, "stdin {}: {}", nlines, line.to_uppercase()).unwrap();
    }
    writeln!(out, "stdin: {} lines, {} words", nlines, words).unwrap();

    // Files: create, write, append, seek, read_dir, rename, metadata, remove.
    fs::create_dir_all("work/deep/er").unwrap();
    {
        let mut f = fs::File::create("work/data.txt").unwrap();
        for i in 0..50 {
            writeln!(f, "row {:02} {}", i, "x".repeat(i % 7)).unwrap();
        }
    }
    {
        let mut f = fs::OpenOptions::new().append(true).open("work/data.txt").unwrap();
        f.write_all(b"appended\n").unwrap();
    }
    let text = fs::read_to_string("work/data.txt").unwrap();
    writeln!(out, "data.txt: {} bytes, {} lines, last={:?}", text.len(), text.lines().count(), text.lines().last().unwrap()).unwrap();
    {
        let mut f = fs::OpenOptions::new().read(true).write(true).open("work/data.txt").unwrap();
        f.seek(SeekFrom::Start(4)).unwrap();
        f.write_all(b"ROW").unwrap();
        let end = f.seek(SeekFrom::End(-9)).unwrap();
        let mut tail = String::new();
        f.read_to_string(&mut tail).unwrap();
        writeln!(out, "seek end-9 -> {} tail={:?}", end, tail).unwrap();
        f.set_len(100).unwrap();
    }
    let meta = fs::metadata("work/data.txt").unwrap();
    writeln!(out, "data.txt truncated: len={} is_file={} is_dir={}", meta.len(), meta.is_file(), meta.is_dir()).unwrap();
    let modified = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
    writeln!(out, "mtime after 2020: {}", modified.as_secs() > 1_577_836_800).unwrap();

    let input = fs::read("input.txt").unwrap();
    let sum: u64 = input.iter().map(|&b| b as u64).sum();
    fs::write("work/deep/er/input.rev", input.iter().rev().cloned().collect::<Vec<u8>>()).unwrap();
    writeln!(out, "input.txt: {} bytes, byte sum {}", input.len(), sum).unwrap();

    fs::rename("work/data.txt", "work/deep/moved.txt").unwrap();
    writeln!(out, "data.txt exists after rename: {}", fs::metadata("work/data.txt").is_ok()).unwrap();
    fs::write("work/scratch", b"temporary").unwrap();
    list(&mut out, "work");
    list(&mut out, "work/deep");
    fs::remove_file("work/scratch").unwrap();
    let err = fs::remove_dir("work/deep").unwrap_err();
    writeln!(out, "remove_dir non-empty: {}", why(&err)).unwrap();
    let err = fs::read("work/scratch").unwrap_err();
    writeln!(out, "read removed: {:?} {}", err.kind(), why(&err)).unwrap();
    let err = fs::create_dir("work/deep").unwrap_err();
    writeln!(out, "create_dir existing: {:?} {}", err.kind(), why(&err)).unwrap();
    fs::create_dir("work/empty").unwrap();
    fs::remove_dir("work/empty").unwrap();
    list(&mut out, "work");

    // copy, hard_link, and remove_dir_all (which works through opened directory fds).
    fs::create_dir_all("work/scrap/x/y").unwrap();
    fs::write("work/scrap/x/y/z", b"z").unwrap();
    let copied = fs::copy("work/deep/moved.txt", "work/scrap/x/copy").unwrap();
    fs::hard_link("work/deep/moved.txt", "work/hard.txt").unwrap();
    let same = fs::read("work/hard.txt").unwrap() == fs::read("work/scrap/x/copy").unwrap();
    writeln!(out, "copied {} bytes, hard link and copy equal: {}", copied, same).unwrap();
    fs::remove_dir_all("work/scrap").unwrap();
    list(&mut out, "work");

    // Clocks.
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    let elapsed = t0.elapsed();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    writeln!(out, "slept>=20ms: {}", elapsed >= Duration::from_millis(20)).unwrap();
    writeln!(out, "wall clock after 2020: {}", now.as_secs() > 1_577_836_800).unwrap();

    // HashMap's RandomState seeds itself from the OS (random_get on WASI).
    let s1 = std::collections::hash_map::RandomState::new();
    let s2 = std::collections::hash_map::RandomState::new();
    use std::hash::{BuildHasher, Hash, Hasher};
    let h = |s: &std::collections::hash_map::RandomState| {
        let mut h = s.build_hasher();
        "key".hash(&mut h);
        h.finish()
    };
    writeln!(out, "hash seeds: {}", if h(&s1) == h(&s1) { "stable" } else { "unstable" }).unwrap();
    let _ = s2;

    fs::write("report.txt", format!("args={} lines={} words={} exit={}\n", rest.len(), nlines, words, code)).unwrap();
    eprintln!("rtour: exiting with {}", code);
    if panic {
        out.flush().unwrap();
        drop(out);
        let v: Vec<u32> = Vec::new();
        let i = rest.len() + 7;
        panic!("deliberate panic: index {} of {}", i, v.len());
    }
    writeln!(out, "exit {}", code).unwrap();
    out.flush().unwrap();
    drop(out);
    std::process::exit(code);
}

/// The OS's message for an error without the "(os error N)" suffix: errno
/// numbers differ between WASI and Linux, the strerror text does not.
fn why(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn list(out: &mut impl Write, path: &str) {
    let mut names: Vec<String> = fs::read_dir(path)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let kind = if e.file_type().unwrap().is_dir() { "dir" } else { "file" };
            format!("{}({})", e.file_name().to_string_lossy(), kind)
        })
        .collect();
    names.sort();
    writeln!(out, "ls {}: {}", path, names.join(" ")).unwrap();
}
