//! Data-parallel training over MPI (`mpirun -n 2`, the `mpi` feature). The test binary starts
//! itself under `mpirun` (the child runs when `HETCONV_MPI_CHILD` names an output file): two
//! ranks, each with half of every batch, must end with the weights of one process that trained
//! on the whole batches: a network without BatchNorm, and one with synchronised BatchNorm
//! (`--sync-bn`; per-rank statistics, PyTorch DDP's default, differ by design). Then the command
//! line: `mpirun -n 2 hetconv train --sync-bn` gives the single process's numbers and writes
//! once, its checkpoint resumes in one process, and a killed or failing rank ends the job. Open MPI's `mpirun` must be installed (`.ci/deps.sh` does; CI fails without it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Tolerance, assert_close, assert_close64, ctx, fixtures, has_f16, note, to_f64};
use hetconv::autograd::{Tape, Var, ops};
use hetconv::data::{Augment, Dataset, cifar};
use hetconv::dist::BatchNormStats;
use hetconv::kernels::loss_scale::ScalerState;
use hetconv::model::InputShape;
use hetconv::nn::{BatchNorm, Conv2d, Init, Linear, ParamStore, ParamStoreBuilder};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer};
use hetconv::{Context, Model, Precision, Result, Tensor};

/// A conv with bias, then (with `batch_norm`) BatchNorm with ReLU, else ReLU; a 2x2 pool and a
/// linear layer.
struct SmallNet {
    store: ParamStore,
    conv: Conv2d,
    bn: Option<BatchNorm>,
    fc: Linear,
}

impl SmallNet {
    fn new(ctx: &Context, batch_norm: bool) -> Result<Self> {
        let mut init = Init::new(3);
        let mut b = ParamStoreBuilder::default();
        let conv = Conv2d::standard(&mut b, &mut init, "conv", (3, 4), true)?;
        let bn = batch_norm.then(|| BatchNorm::new(&mut b, "bn", 4).with_relu());
        let fc = Linear::new(&mut b, &mut init, "fc", (4 * 16 * 16, 10), 0.01);
        Ok(Self {
            store: b.build(ctx)?,
            conv,
            bn,
            fc,
        })
    }
}

impl Model for SmallNet {
    fn store(&self) -> &ParamStore {
        &self.store
    }

    fn store_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }

    fn input(&self) -> InputShape {
        InputShape {
            channels: 3,
            size: 32,
        }
    }

    fn classes(&self) -> usize {
        10
    }

    fn forward(&self, tape: &mut Tape, x: &Tensor, train: bool) -> Result<Var> {
        let h = ops::input(tape, x)?;
        let h = self.conv.forward(tape, &self.store, &h)?;
        let h = match &self.bn {
            Some(bn) => bn.forward(tape, &self.store, &h, train)?,
            None => ops::relu(tape, &h)?,
        };
        let h = ops::max_pool2(tape, &h)?;
        let h = ops::flatten(tape, &h)?;
        self.fc.forward(tape, &self.store, &h)
    }
}

fn cifar20() -> Dataset {
    let bytes = std::fs::read(fixtures().join("cifar10_test_first20.bin")).unwrap();
    cifar::parse(&bytes, "cifar20").unwrap()
}

/// What a test trains: the network with BatchNorm (statistics per rank or synchronised under
/// mpirun) or without, in f32 or mixed precision.
#[derive(Clone, Copy)]
struct Case {
    batch_norm: Option<BatchNormStats>,
    precision: Precision,
    /// Under mixed precision, the loss scale to start from (None: GradScaler's default).
    initial_scale: Option<f32>,
}

impl Case {
    fn f32(batch_norm: Option<BatchNormStats>) -> Self {
        Self {
            batch_norm,
            precision: Precision::F32,
            initial_scale: None,
        }
    }

    /// Mixed precision with synchronised BatchNorm, from `initial_scale` (None: the default).
    fn mixed(initial_scale: Option<f32>) -> Self {
        Self {
            batch_norm: Some(BatchNormStats::Synchronised),
            precision: Precision::Mixed,
            initial_scale,
        }
    }
}

/// Batches of 9 from the 20 images (2 ranks take 4 and 5 images: uneven shares), shuffled and
/// augmented (so each rank's share must be drawn exactly as in the whole batch), 5 steps over
/// three epochs.
fn settings(precision: Precision) -> TrainSettings {
    TrainSettings {
        epochs: 3,
        max_steps: Some(5),
        batch_size: 9,
        lr: LrSchedule {
            base_lr: 0.05,
            schedule: Schedule::Constant,
            warmup_epochs: 0.0,
        },
        momentum: 0.9,
        weight_decay: 5e-4,
        nesterov: false,
        augment: Some(Augment::default()),
        shuffle: true,
        seed: 9,
        report_every: 2,
        precision,
    }
}

/// What a training run ends with.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Trained {
    weights: Vec<f32>,
    /// The BatchNorm running estimates (empty without BatchNorm).
    estimates: Vec<f32>,
    /// The last reported loss.
    loss: f64,
    /// Under mixed precision: the loss scale and the steps skipped.
    loss_scale: Option<(f32, u32)>,
}

/// Trains `case`'s network, as one rank of a data-parallel run when MPI launched this process,
/// else alone.
fn train(case: Case, distributed: bool) -> Trained {
    let ctx = ctx();
    let model = SmallNet::new(&ctx, case.batch_norm.is_some()).unwrap();
    let settings = settings(case.precision);
    let progress = Progress {
        loss_scale: case.initial_scale.map(|scale| ScalerState {
            scale,
            clean_steps: 0,
            skipped: 0,
        }),
        ..Progress::default()
    };
    let mut trainer = Trainer::new(model, cifar20(), settings, progress).unwrap();
    if distributed {
        let comm = hetconv::dist::mpi::MpiCommunicator::from_launcher()
            .unwrap()
            .expect("started by mpirun");
        let stats = case.batch_norm.unwrap_or_default();
        trainer = pollster::block_on(trainer.distributed(Box::new(comm), stats)).unwrap();
    }
    let mut loss = f64::NAN;
    while !trainer.is_done() {
        let report = pollster::block_on(trainer.step()).unwrap();
        if let Some((l, _)) = report.metrics {
            loss = l;
        }
        assert_eq!(report.images, 9);
    }
    let progress = pollster::block_on(trainer.checkpoint_progress()).unwrap();
    let store = trainer.model().store();
    Trained {
        weights: store.flat().0.to_vec().unwrap(),
        estimates: store
            .buffers()
            .iter()
            .filter(|(name, _)| name.starts_with("bn.running_"))
            .flat_map(|(_, t)| t.to_vec().unwrap())
            .collect(),
        loss,
        loss_scale: progress.loss_scale.map(|s| (s.scale, s.skipped)),
    }
}

/// The test `name` trains `case` under `mpirun -n 2` (the test binary starting itself, the
/// child running when `HETCONV_MPI_CHILD` names an output file) and alone; returns rank 0's
/// and rank 1's results and the single process's, or None without mpirun.
fn two_ranks_and_one(name: &str, case: Case) -> Option<[Trained; 3]> {
    if let Some(out) = std::env::var_os("HETCONV_MPI_CHILD") {
        let trained = train(case, true);
        let rank: usize = std::env::var("OMPI_COMM_WORLD_RANK")
            .unwrap()
            .parse()
            .unwrap();
        let mut text = serde_json::to_string(&trained).unwrap();
        text.push('\n');
        std::fs::write(format!("{}.{rank}", out.to_string_lossy()), text).unwrap();
        return None;
    }
    let mut mpirun = mpirun(600)?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trained");
    let status = mpirun
        .args(["-n", "2"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env("HETCONV_MPI_CHILD", &out)
        .status()
        .unwrap();
    assert!(status.success(), "mpirun failed");
    let read = |rank: usize| -> Trained {
        let path = format!("{}.{rank}", out.display());
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    Some([read(0), read(1), train(case, false)])
}

/// Rank 0's results against rank 1's (identical bits) and the single process's (`what`
/// within `tol`, relative to each tensor's largest value: half-batch sums added vs one
/// whole-batch sum, the same terms in another order, over 5 steps of momentum SGD); the same
/// loss scale and skipped steps under mixed precision.
fn assert_ranks_train_as_one(what: &str, [rank0, rank1, single]: &[Trained; 3], tol: Tolerance) {
    assert_eq!(rank0, rank1, "the ranks end identical, bit for bit");
    let with_batch_norm = !single.estimates.is_empty();
    let initial = SmallNet::new(&ctx(), with_batch_norm)
        .unwrap()
        .store()
        .flat()
        .0
        .to_vec()
        .unwrap();
    assert_ne!(single.weights, initial, "trained");
    let weights = format!("{what}: weights, 2 ranks vs 1 process");
    let want = to_f64(&single.weights);
    assert_close(&weights, &rank0.weights, &want, tol.scaled(&want));
    let estimates = format!("{what}: BatchNorm running estimates, 2 ranks vs 1 process");
    let want = to_f64(&single.estimates);
    assert_close(&estimates, &rank0.estimates, &want, tol.scaled(&want));
    let (loss0, loss) = (rank0.loss, single.loss);
    assert!(
        (loss0 - loss).abs() <= tol.rtol * loss.abs(),
        "{what}: loss {loss0} vs {loss}"
    );
    assert_eq!(
        rank0.loss_scale, single.loss_scale,
        "{what}: the loss scaler"
    );
}

/// 1e-5 relative to the largest value, 1e-6 absolute: f32 sums in another order.
const F32_TOL: Tolerance = Tolerance {
    rtol: 1e-5,
    atol: 1e-6,
};

#[test]
fn two_ranks_with_half_batches_train_as_one_process_with_whole_batches() {
    // Without BatchNorm, whose per-rank statistics are the one thing that differs by design.
    let name = "two_ranks_with_half_batches_train_as_one_process_with_whole_batches";
    if let Some(trained) = two_ranks_and_one(name, Case::f32(None)) {
        assert_ranks_train_as_one("no BatchNorm", &trained, F32_TOL);
    }
}

#[test]
fn with_synchronised_batch_norm_two_ranks_train_as_one_process() {
    let name = "with_synchronised_batch_norm_two_ranks_train_as_one_process";
    let case = Case::f32(Some(BatchNormStats::Synchronised));
    if let Some(trained) = two_ranks_and_one(name, case) {
        assert_ranks_train_as_one("--sync-bn", &trained, F32_TOL);
        assert!(!trained[2].estimates.is_empty(), "the net has BatchNorm");
    }
}

/// Mixed precision (f16 operands, f32 sums, a dynamic loss scale) with synchronised BatchNorm:
/// the ranks' loss scales stay alike and equal the single process's.
#[test]
fn in_mixed_precision_two_ranks_train_as_one_process() {
    if !has_f16(&ctx(), "mixed-precision data-parallel training") {
        return;
    }
    let name = "in_mixed_precision_two_ranks_train_as_one_process";
    let case = Case::mixed(None);
    if let Some(trained) = two_ranks_and_one(name, case) {
        // f16 operands: where the two runs' f32 values (1e-7 apart) round to neighbouring
        // f16s, a product moves by 2^-11 of itself. Seen here: weights (up to 0.3) within
        // 1.8e-4, the loss within 4e-5 relative; bound 1e-3 for both.
        let tol = Tolerance {
            rtol: 1e-3,
            atol: 1e-3,
        };
        assert_ranks_train_as_one("mixed precision", &trained, tol);
        assert!(trained[2].loss_scale.is_some(), "a loss scaler ran");
    }
}

/// Steps whose f16 gradients overflow are skipped, and the loss scale halved, on every rank
/// alike (the summed gradients are the same bits everywhere). Not compared with one process:
/// each rank's loss is the mean over its own share, so its scaled gradients are 1 / share
/// times one process's and overflow at a lower scale (as with PyTorch's DDP and GradScaler).
#[test]
fn in_mixed_precision_overflowing_steps_are_skipped_alike_on_every_rank() {
    if !has_f16(&ctx(), "mixed-precision data-parallel training") {
        return;
    }
    let name = "in_mixed_precision_overflowing_steps_are_skipped_alike_on_every_rank";
    // A loss scale of 2^18 overflows f16 in the first steps.
    let case = Case::mixed(Some(262144.0));
    if let Some([rank0, rank1, _]) = two_ranks_and_one(name, case) {
        assert_eq!(rank0, rank1, "the ranks end identical, bit for bit");
        let (scale, skipped) = rank0.loss_scale.expect("a loss scaler ran");
        assert!(
            skipped > 0 && scale < 262144.0,
            "steps were skipped: {scale}, {skipped}"
        );
    }
}

/// Per-rank BatchNorm statistics (the default) are not the single process's: the test above
/// has something to show.
#[test]
fn with_per_rank_batch_norm_two_ranks_differ_from_one_process() {
    let name = "with_per_rank_batch_norm_two_ranks_differ_from_one_process";
    let case = Case::f32(Some(BatchNormStats::PerRank));
    if let Some([rank0, rank1, single]) = two_ranks_and_one(name, case) {
        assert_eq!(rank0, rank1, "the ranks end identical, bit for bit");
        let largest = rank0
            .weights
            .iter()
            .zip(&single.weights)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            largest > 1e-4,
            "per-rank statistics changed nothing: {largest}"
        );
    }
}

/// `mpirun` (the ranks still to be given: `-n 2 PROGRAM`) with what running as root in a
/// container needs; it ends the job after `limit_s` seconds, so that a hang fails the test
/// instead of stalling CI.
fn mpirun(limit_s: u32) -> Option<Command> {
    let found = Command::new("mpirun").arg("--version").output().is_ok();
    if !found {
        let text = "mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev): the data-parallel run was not checked";
        assert!(std::env::var_os("CI").is_none(), "{text} (CI needs it)");
        note(text);
        return None;
    }
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--timeout", &limit_s.to_string()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        // A rank waiting in a collective yields its core instead of spinning on it: on 2 cores
        // a spinning rank starved the other's first (cold) shader compilation for minutes.
        .env("OMPI_MCA_mpi_yield_when_idle", "1");
    Some(cmd)
}

/// `cmd` (mpirun with its ranks, or `env` for one process) running `hetconv train` of a small
/// VGG on 48 embedded images for `epochs` epochs into `run`, with `extra` flags.
fn train_command(mut cmd: Command, run: &Path, epochs: &str, extra: &[&str]) -> Command {
    cmd.arg(env!("CARGO_BIN_EXE_hetconv"))
        .args(train_args(run, epochs, extra))
        .env("HETCONV_TUNE", "off")
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// The arguments of [`train_command`]'s `hetconv`.
fn train_args(run: &Path, epochs: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let flags = [
        "train",
        "--width-mult",
        "0.125",
        "--part",
        "2",
        "--batch-size",
        "8",
        "--train-limit",
        "48",
        "--eval-limit",
        "16",
        "--epochs",
        epochs,
        "--out",
    ];
    let mut args: Vec<std::ffi::OsString> = flags.iter().map(Into::into).collect();
    args.push(run.into());
    args.extend(extra.iter().map(Into::into));
    args
}

/// [`train_command`] for 2 epochs, run to success.
fn hetconv_train(cmd: Command, run: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = train_command(cmd, run, "2", extra);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The rows of a run's `steps.csv`: step, epoch, lr, loss, accuracy per reported step.
fn steps_csv(run: &Path) -> Vec<Vec<f64>> {
    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    let mut lines = steps.lines();
    assert_eq!(lines.next(), Some("step,epoch,lr,loss,accuracy"));
    lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn mpirun_hetconv_train_sync_bn_gives_the_single_process_numbers_and_resumes_anywhere() {
    let Some(mut mpirun) = mpirun(600) else {
        return;
    };
    mpirun.args(["-n", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let run: PathBuf = dir.path().join("run");
    // The main job's model (a narrow VGG-16 with BatchNorm after every conv), 8 steps, every
    // loss read back. Each
    // rank opens the adapter of its local rank (modulo the count: lavapipe alone here).
    let flags = ["--max-steps", "8", "--sync-bn", "--report-every", "1"];
    let out = hetconv_train(
        mpirun,
        &run,
        &[&flags[..], &["--adapter-per-rank"]].concat(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("adapter  ").count(),
        1,
        "rank 0 alone prints:\n{text}"
    );
    assert!(
        text.contains("ranks    2 (MPI, data-parallel: 4 images per rank per step; BatchNorm statistics over all ranks' images (--sync-bn))"),
        "{text}"
    );
    assert!(text.contains("epoch   1:"), "{text}");
    // One process with the whole batches: the same losses and accuracies, step, epoch and lr
    // exactly, over the first 4 steps within 1e-5 (seen: 7e-6; per-rank statistics are 1e-3
    // off at the first step). Later steps are not compared: this narrow net amplifies rounding
    // (one process fused vs unfused, the same sums in another order, drift apart by 2e-4 at
    // step 6 and 1e-2 at step 7), and the ranks add in another order too.
    let single = dir.path().join("single");
    hetconv_train(Command::new("env"), &single, &flags);
    let (steps, want) = (steps_csv(&run), steps_csv(&single));
    assert_eq!(steps.len(), want.len(), "the same reported steps");
    for (row, (got, want)) in steps.iter().zip(&want).take(4).enumerate() {
        assert_eq!(got[..3], want[..3], "row {row}: step, epoch, lr");
        let tol = Tolerance {
            rtol: 1e-5,
            atol: 1e-6,
        };
        let name = format!("steps.csv row {row}: loss, accuracy");
        assert_close64(&name, &got[3..], &want[3..], tol);
    }
    // The checkpoint of a 2-rank run resumes in one process, to the end of the run.
    let ckpt = run.join("checkpoint.safetensors");
    let out = hetconv_train(
        Command::new("env"),
        &run,
        &["--resume", ckpt.to_str().unwrap(), "--max-steps", "12"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("resuming") && text.contains("at step 8"),
        "{text}"
    );
    assert!(
        text.contains("epoch   2:") && !text.contains("epoch   1:"),
        "{text}"
    );
}

/// The processes `mpirun` (pid `parent`) started: the ranks (Linux: from /proc).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the parent is the second field after the ")".
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(parent)
        })
        .collect()
}

/// Starts a 2-rank training run with `extra` flags, sends `signal` (`kill -SIGNAL`) to one
/// rank once training is under way, and waits for the job to end (at most `within_s` seconds,
/// else the test fails): its status, its standard error and the seconds it took after the
/// signal.
fn signal_a_rank(
    signal: &str,
    extra: &[&str],
    within_s: u64,
) -> (std::process::ExitStatus, String, f64) {
    let mut mpirun = mpirun(600).expect("mpirun, checked by the caller");
    mpirun.args(["-n", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let stderr_path = dir.path().join("stderr");
    let mut job = train_command(mpirun, &run, "1000", extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // Training is under way once the first epoch's checkpoint is written.
    let started = std::time::Instant::now();
    // The job must not outlive a failed check (mpirun would run it until its --timeout).
    fn fail(job: &mut std::process::Child, why: String) -> ! {
        let _ = job.kill();
        panic!("{why}")
    }
    while !run.join("checkpoint.safetensors").exists() {
        if started.elapsed().as_secs() > 300 {
            fail(
                &mut job,
                "the 2-rank run wrote no checkpoint in 5 minutes".into(),
            );
        }
        if job.try_wait().unwrap().is_some() {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            fail(&mut job, format!("the job ended early:\n{stderr}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let ranks = children(job.id());
    if ranks.len() != 2 {
        fail(&mut job, format!("mpirun's children: {ranks:?}"));
    }
    let target = ranks.iter().max().unwrap();
    let kill = |signal: &str| {
        Command::new("sh")
            .args(["-c", &format!("kill -{signal} {target} 2>/dev/null")])
            .status()
            .unwrap()
    };
    kill(signal);
    let signalled_at = std::time::Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        if signalled_at.elapsed().as_secs() > within_s {
            let _ = job.kill();
            kill("KILL");
            panic!("the job still ran {within_s} s after rank pid {target} got SIG{signal}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // A stopped rank that the launcher left behind must not outlive the test.
    kill("KILL");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    (status, stderr, signalled_at.elapsed().as_secs_f64())
}

/// A rank killed mid-run ends the job with an error within a bounded time, instead of leaving
/// the other rank waiting in the gradient exchange.
#[test]
fn a_killed_rank_ends_the_job_with_an_error() {
    if mpirun(600).is_none() {
        return;
    }
    let (status, _, seconds) = signal_a_rank("KILL", &[], 60);
    assert!(!status.success(), "a job that lost a rank reports failure");
    eprintln!("the job ended {seconds:.1} s after a rank was killed");
}

/// A rank that hangs (stopped with SIGSTOP mid-run: alive, but never answering) ends the job
/// once the other rank's exchange has waited `--exchange-timeout` seconds, with an error that
/// says so, instead of a job that never ends.
#[test]
fn a_hung_rank_ends_the_job_after_the_exchange_timeout() {
    if mpirun(600).is_none() {
        return;
    }
    let (status, stderr, seconds) = signal_a_rank("STOP", &["--exchange-timeout", "20"], 120);
    assert!(!status.success(), "a job with a hung rank reports failure");
    assert!(
        stderr.contains("error: rank 0 of 2: an exchange waited")
            && stderr.contains("(the limit is 20 s: --exchange-timeout)"),
        "rank 0 says why it ended the job:\n{stderr}"
    );
    assert!(seconds >= 20.0, "not before the limit: {seconds:.1} s");
    eprintln!("the job ended {seconds:.1} s after a rank was stopped");
}

/// A rank that stops on an error ends the job, its error printed, instead of leaving the
/// others waiting in the next exchange (MPI's orderly shutdown, run as the failed rank's
/// communicator was dropped, waited for every rank: the job hung). Rank 1 alone is given data
/// that does not exist (mpirun's `-n 1 A : -n 1 B`); rank 0 waits for it in the first
/// exchange.
#[test]
fn a_failing_rank_ends_the_job_with_its_error() {
    let limit_s = 300;
    let Some(mut mpirun) = mpirun(limit_s) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let missing = dir.path().join("no-such-data");
    mpirun.args(["-n", "1"]);
    let mut job = train_command(mpirun, &run, "1", &[]);
    job.args([":", "-n", "1", env!("CARGO_BIN_EXE_hetconv")])
        .args(train_args(
            &run,
            "1",
            &["--data", missing.to_str().unwrap()],
        ));
    let started = std::time::Instant::now();
    let out = job.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a job with a failed rank reports failure"
    );
    assert!(
        !stderr.contains("time limit for job execution has been reached"),
        "the job hung until mpirun's {limit_s} s limit:\n{stderr}"
    );
    assert!(
        stderr.contains("error: rank 1 of 2: ") && stderr.contains("no-such-data"),
        "rank 1's error, naming the missing data:\n{stderr}"
    );
    eprintln!(
        "the job ended {:.1} s after it started",
        started.elapsed().as_secs_f64()
    );
}
