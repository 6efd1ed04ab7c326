//! W7: W2's job (`seq 1 3000000`, 22.9 MB of log) given 10 secrets, so the runner's masker
//! scans every byte for 10 values and their encoded forms (none is printed), against the same
//! job given none, alternating in the same run. Target: ≤ 1.10×.

use super::{Alternation, Ctx, timed};
use crate::report::{Section, Target, timing_table};
use anyhow::bail;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MASKED: &str = "bench-w7-secrets";
const PLAIN: &str = "bench-w7-plain";
const SECRETS: usize = 10;
const N: u32 = 3_000_000;
/// The first script line: in the masked job it proves the secrets arrived (the job fails if
/// either variable is empty); the plain job runs a line of the same length that does nothing.
const CHECK_MASKED: &str = "test -n \"$W7_S0\" -a -n \"$W7_S9\"";
const CHECK_PLAIN: &str = "test -n \"xxxxxx\" -a -n \"yyyyyy\"";

/// Ten values of 32 letters from `p`–`y`: no digit or newline, so no form of them (exact,
/// base64, percent, lowercase hex) can occur in seq's output, and the stored log must be
/// exactly seq's output with nothing masked.
fn values() -> Vec<String> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
        | 1;
    (0..SECRETS)
        .map(|_| {
            (0..32)
                .map(|_| {
                    // xorshift64: enough to make values nobody guesses in a bench log.
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'p' + (x % 10) as u8)
                })
                .collect()
        })
        .collect()
}

fn pipeline(image: &str, check: &str, secrets: bool) -> String {
    let names: Vec<String> = (0..SECRETS).map(|i| format!("W7_S{i}")).collect();
    let secrets = if secrets {
        format!("    secrets: [{}]\n", names.join(", "))
    } else {
        String::new()
    };
    format!(
        "jobs:\n  - name: seq\n    image: {image}\n{secrets}    script:\n      - '{check}'\n      - seq 1 {N}\n"
    )
}

fn expected_log(check: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(23_000_000);
    v.extend_from_slice(format!("$ {check}\n$ seq 1 {N}\n").as_bytes());
    for i in 1..=N {
        v.extend_from_slice(i.to_string().as_bytes());
        v.push(b'\n');
    }
    v
}

/// Runs W7.
pub async fn run(ctx: &mut Ctx) -> anyhow::Result<Section> {
    let api = ctx.api.clone();
    api.setup_pipeline(MASKED, &pipeline(&ctx.image, CHECK_MASKED, true))
        .await?;
    api.setup_pipeline(PLAIN, &pipeline(&ctx.image, CHECK_PLAIN, false))
        .await?;
    for (i, value) in values().iter().enumerate() {
        api.put_secret(MASKED, &format!("W7_S{i}"), value).await?;
    }

    // Correctness first, not timed: each stored log is exactly what its job wrote.
    for (repo, check) in [(MASKED, CHECK_MASKED), (PLAIN, CHECK_PLAIN)] {
        let t = api.trigger(repo).await?;
        api.expect_success(&t.run_id, Duration::from_secs(300))
            .await?;
        let job = t.job_ids.first().cloned().unwrap_or_default();
        let stored = api.raw_log(&job).await?;
        let expected = expected_log(check);
        if stored != expected {
            bail!(
                "the stored log of {repo}'s job {job} differs from the job's output ({} bytes stored, {} expected)",
                stored.len(),
                expected.len()
            );
        }
    }

    let names = [
        "W2's job with 10 secrets (masking active)",
        "W2's job without secrets",
    ];
    let mut alt = Alternation::new(&names);
    let one = |repo: &'static str| {
        let api = api.clone();
        async move {
            let t = api.trigger(repo).await?;
            api.expect_success(&t.run_id, Duration::from_secs(300))
                .await?;
            anyhow::Ok(())
        }
    };
    let n = ctx.iterations(7, 1);
    for i in 0..n {
        eprintln!("bench: W7 iteration {}/{n}", i + 1);
        alt.record(0, timed(one(MASKED)).await);
        alt.record(1, timed(one(PLAIN)).await);
    }
    let mut body = format!(
        "W2's job (`seq 1 {N}`, 22.9 MB of log) in two repos: one whose job names 10 repo secrets \
         of 32 bytes (so runner-svc masks each value, each of its base64, percent and hex forms, \
         across read boundaries, in every byte of output), one whose job names none. The first \
         script line makes the masked job fail unless the secrets reached it. Before the timed \
         runs, each repo's stored log was read back and compared byte for byte with what its job \
         printed (no value occurs in it, so nothing may be masked). Trigger → `success`, the \
         two alternating.\n\n"
    );
    body.push_str(&timing_table(&alt.rows(), 1));
    body.push_str(&alt.errors_md());
    Ok(Section {
        title: "W7 — masking 10 secrets in 22.9 MB of log".into(),
        body,
        targets: vec![Target::at_most(
            "W7",
            "with 10 secrets ÷ without (median)",
            alt.ratio(0, 1),
            1.10,
            "×",
        )],
    })
}
