//! `clawnet-defender-eval [--json] [--misses] [INJECTION.jsonl COMMAND.jsonl]`:
//! evaluates the defender's scorers on the labelled corpus and prints, per
//! scorer and split, examples, TP, FP, TN, FN, precision, recall and
//! false-positive rate.

use std::path::PathBuf;
use std::process::ExitCode;

use clawnet_defender::corpus;

fn main() -> ExitCode {
    let mut json = false;
    let mut misses = false;
    let mut paths: Vec<PathBuf> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--json" => json = true,
            "--misses" => misses = true,
            "-h" | "--help" => {
                println!(
                    "usage: clawnet-defender-eval [--json] [--misses] [INJECTION.jsonl COMMAND.jsonl]"
                );
                return ExitCode::SUCCESS;
            }
            other => paths.push(PathBuf::from(other)),
        }
    }
    let (inj_path, cmd_path) = match paths.len() {
        0 => {
            let dir = corpus::default_dir();
            (dir.join("injection.jsonl"), dir.join("command.jsonl"))
        }
        2 => (paths[0].clone(), paths[1].clone()),
        _ => {
            eprintln!("expected no corpus paths or two (injection, command)");
            return ExitCode::from(2);
        }
    };
    let load = |p: &PathBuf| match corpus::load(p) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    };
    let (Some(inj), Some(cmd)) = (load(&inj_path), load(&cmd_path)) else {
        return ExitCode::FAILURE;
    };
    let mut eval = corpus::evaluate(&inj, &cmd);
    if !misses {
        eval.misses.clear();
    }
    if json {
        match serde_json::to_string_pretty(&eval) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}{}", corpus::table(&eval), corpus::misses(&eval));
    }
    ExitCode::SUCCESS
}
