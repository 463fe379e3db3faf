//! One object every host holds (`FullyReplicated`), read by ranges of lines on 1, 2 and 3
//! hosts: the sets (part files in host order) and `preprocessing.json` are one host's, byte
//! for byte. Cells of 128 bytes (`SAGESTEP_PREPROCESS_CELL_BYTES`) put hundreds of cuts in a
//! small file, most inside a line.

use crate::preprocess::{SETS, run_hosts_with, written};
use crate::util::{MlTree, assert_success};

const CELL: (&str, &str) = ("SAGESTEP_PREPROCESS_CELL_BYTES", "128");

/// Auto-MPG-shaped rows with a unique label each, weights with decimals (so that sums fold
/// differently in another order), missing values and blank lines; a line of 400 bytes
/// crosses several cells.
fn text(header: bool, end: &str, final_newline: bool) -> String {
    let mut state = 11u64;
    let mut next = move |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut lines = Vec::new();
    if header {
        lines.push("mpg,cylinders,displacement,horsepower,weight,acceleration,model year,origin,car name".to_string());
    }
    for id in 0..700u64 {
        let hp = if next(25) == 0 { "?".to_string() } else { format!("{}.{}", 46 + next(180), next(10)) };
        let name = if id == 333 { "x".repeat(400) } else { format!("car {id}") };
        lines.push(format!(
            "{}.{:03},{},{}.{},{hp},{}.{:02},{}.{},{},{},\"{name}\"",
            9 + id / 20,
            id,
            [4, 6, 8][next(3) as usize],
            68 + next(380),
            next(10),
            1600 + next(3500),
            next(100),
            8 + next(16),
            next(10),
            70 + next(13),
            1 + next(3),
        ));
        if id % 97 == 5 {
            lines.push(String::new());
        }
    }
    let mut text = lines.join(end);
    if final_newline {
        text.push_str(end);
    }
    text
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// A set's bytes over the hosts' part files in host order (one host: its one file).
fn set_bytes(trees: &[MlTree], set: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, ml) in trees.iter().enumerate() {
        let name = if trees.len() == 1 { set.to_string() } else { format!("part-algo-{}", i + 1) };
        let path = format!("processing/{set}/{name}.csv");
        if ml.path(&path).exists() {
            bytes.extend(std::fs::read(ml.path(&path)).unwrap());
        }
    }
    bytes
}

fn rows_written(ml: &MlTree) -> usize {
    let parts = written(ml).into_iter().filter(|f| SETS.iter().any(|s| f.starts_with(&format!("processing/{s}/"))));
    parts.map(|f| ml.read(&f).lines().count()).sum()
}

/// The object on 1, 2 and 3 hosts, each holding it: every output as one host's. Returns
/// the rows each host wrote, per world.
fn same_outputs_on_any_number_of_hosts(how: &str, object: (String, Vec<u8>)) -> Vec<Vec<usize>> {
    let all = [object];
    let (one, out) = run_hosts_with(&all, 1, &[vec![0]], &[1], &[CELL]);
    assert_success(&out[0]);
    let report = one[0].read("processing/artifacts/preprocessing.json");
    let reference: Vec<Vec<u8>> = SETS.iter().map(|s| set_bytes(&one, s)).collect();
    assert!(reference.iter().all(|r| !r.is_empty()), "{how}: a set is empty");
    let mut shares = vec![vec![rows_written(&one[0])]];
    for world in [2, 3] {
        let (trees, outputs) =
            run_hosts_with(&all, world, &vec![vec![0]; world], &(1..=world).collect::<Vec<_>>(), &[CELL]);
        for out in &outputs {
            assert_success(out);
        }
        assert!(
            trees[0].read("processing/artifacts/preprocessing.json") == report,
            "{how}, {world} hosts: preprocessing.json differs from one host's"
        );
        for (set, expected) in SETS.iter().zip(&reference) {
            assert!(set_bytes(&trees, set) == *expected, "{how}, {world} hosts: `{set}` differs from one host's");
        }
        shares.push(trees.iter().map(rows_written).collect());
    }
    shares
}

#[test]
fn one_object_is_read_by_ranges_on_every_host_and_gives_one_hosts_outputs() {
    let objects = [
        ("a CSV with a header", "cars.csv", text(true, "\n", true).into_bytes()),
        ("CRLF line ends", "crlf.csv", text(true, "\r\n", true).into_bytes()),
        ("no final newline, no header", "open.csv", text(false, "\n", false).into_bytes()),
    ];
    for (how, key, bytes) in objects {
        let shares = same_outputs_on_any_number_of_hosts(how, (format!("data/{key}"), bytes));
        let total = shares[0][0];
        for per_host in &shares[1..] {
            let world = per_host.len();
            assert_eq!(per_host.iter().sum::<usize>(), total, "{how}: every row once");
            assert!(per_host.iter().all(|&n| n * 2 * world >= total), "{how}: rows per host {per_host:?} of {total}");
        }
    }
}

#[test]
fn a_compressed_object_is_read_whole_by_one_host() {
    let shares =
        same_outputs_on_any_number_of_hosts("gzip", ("data/cars.csv.gz".into(), gzip(&text(true, "\n", true))));
    for per_host in &shares[1..] {
        assert_eq!(per_host.iter().filter(|&&n| n > 0).count(), 1, "one host reads it: {per_host:?}");
    }
}

/// A bad field in the last host's range is named by the line one host names: the ranges
/// before it told it where it starts.
#[test]
fn a_bad_line_in_a_later_range_is_named_by_its_line_in_the_object() {
    let good = text(true, "\n", true);
    let mut lines: Vec<&str> = good.split('\n').collect();
    let n = lines.len() - 30;
    lines[n] = "20.5,8,307,fast,3504,12,70,1,\"broken\"";
    let bad = lines.join("\n");
    let all = [("data/cars.csv".to_string(), bad.into_bytes())];
    let cause = format!("cars.csv, line {}, column `horsepower`: `fast` is not a number", n + 1);
    let (one, out) = run_hosts_with(&all, 1, &[vec![0]], &[1], &[CELL]);
    assert_eq!(out[0].status.code(), Some(1));
    assert!(one[0].read("output/message").contains(&cause), "{}", one[0].read("output/message"));
    let (trees, outputs) = run_hosts_with(&all, 3, &[vec![0], vec![0], vec![0]], &[1, 2, 3], &[CELL]);
    for (i, (ml, out)) in trees.iter().zip(&outputs).enumerate() {
        assert_eq!(out.status.code(), Some(1), "algo-{}", i + 1);
        let message = ml.read("output/message");
        assert!(message.contains(&cause), "algo-{}: {message}", i + 1);
        if i != 2 {
            assert!(message.starts_with("host `algo-3` failed: "), "algo-{}: {message}", i + 1);
        }
    }
}
