//! Data-parallel training over MPI (`mpirun -n 2`, the `mpi` feature). The test binary starts
//! itself under `mpirun` (the child runs when `HETCONV_MPI_CHILD` names an output file): two
//! ranks, each with half of every batch, must end with the weights of one process that trained
//! on the whole batches. The network here has no BatchNorm, whose per-rank batch statistics
//! are the one thing that differs by design (as in PyTorch's DDP). Then the command line:
//! `mpirun -n 2 hetconv train` prints and writes once, and its checkpoint resumes in one
//! process. Open MPI's `mpirun` must be installed (`.ci/deps.sh` does; CI fails without it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Tolerance, assert_close, ctx, fixtures, note, to_f64};
use hetconv::autograd::{Tape, Var, ops};
use hetconv::data::{Augment, Dataset, cifar};
use hetconv::model::InputShape;
use hetconv::nn::{Conv2d, Init, Linear, ParamStore, ParamStoreBuilder};
use hetconv::optim::{LrSchedule, Schedule};
use hetconv::train::{Progress, TrainSettings, Trainer};
use hetconv::{Context, Model, Result, Tensor};

/// A conv with bias, a 2x2 pool and a linear layer: no BatchNorm.
struct NoBatchNorm {
    store: ParamStore,
    conv: Conv2d,
    fc: Linear,
}

impl NoBatchNorm {
    fn new(ctx: &Context) -> Result<Self> {
        let mut init = Init::new(3);
        let mut b = ParamStoreBuilder::default();
        let conv = Conv2d::standard(&mut b, &mut init, "conv", (3, 4), true)?;
        let fc = Linear::new(&mut b, &mut init, "fc", (4 * 16 * 16, 10), 0.01);
        Ok(Self {
            store: b.build(ctx)?,
            conv,
            fc,
        })
    }
}

impl Model for NoBatchNorm {
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

    fn forward(&self, tape: &mut Tape, x: &Tensor, _train: bool) -> Result<Var> {
        let h = tape.constant(x.clone());
        let h = self.conv.forward(tape, &self.store, &h)?;
        let h = ops::relu(tape, &h)?;
        let h = ops::max_pool2(tape, &h)?;
        let h = ops::flatten(tape, &h)?;
        self.fc.forward(tape, &self.store, &h)
    }
}

fn cifar20() -> Dataset {
    let bytes = std::fs::read(fixtures().join("cifar10_test_first20.bin")).unwrap();
    cifar::parse(&bytes, "cifar20").unwrap()
}

/// Batches of 8 from the 20 images, shuffled and augmented (so each rank's share must be
/// drawn exactly as in the whole batch), 5 steps over two epochs.
fn settings() -> TrainSettings {
    TrainSettings {
        epochs: 3,
        max_steps: Some(5),
        batch_size: 8,
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
        precision: Default::default(),
    }
}

/// Trains the network (as one rank of a data-parallel run when MPI launched this process) and
/// returns its weights and the last reported loss.
fn train(distributed: bool) -> (Vec<f32>, f64) {
    let ctx = ctx();
    let model = NoBatchNorm::new(&ctx).unwrap();
    let mut trainer = Trainer::new(model, cifar20(), settings(), Progress::default()).unwrap();
    if distributed {
        let comm = hetconv::dist::mpi::MpiCommunicator::from_launcher()
            .unwrap()
            .expect("started by mpirun");
        trainer = pollster::block_on(trainer.distributed(Box::new(comm))).unwrap();
    }
    let mut loss = f64::NAN;
    while !trainer.is_done() {
        let report = pollster::block_on(trainer.step()).unwrap();
        if let Some((l, _)) = report.metrics {
            loss = l;
        }
        assert_eq!(report.images, 8);
    }
    let weights = trainer.model().store().flat().0.to_vec().unwrap();
    (weights, loss)
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

#[test]
fn two_ranks_with_half_batches_train_as_one_process_with_whole_batches() {
    if let Some(out) = std::env::var_os("HETCONV_MPI_CHILD") {
        let (weights, loss) = train(true);
        let rank: usize = std::env::var("OMPI_COMM_WORLD_RANK")
            .unwrap()
            .parse()
            .unwrap();
        let mut text = serde_json::to_string(&(weights, loss)).unwrap();
        text.push('\n');
        std::fs::write(format!("{}.{rank}", out.to_string_lossy()), text).unwrap();
        return;
    }
    let Some(mut mpirun) = mpirun(600) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("weights");
    let status = mpirun
        .args(["-n", "2"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_ranks_with_half_batches_train_as_one_process_with_whole_batches",
            "--nocapture",
        ])
        .env("HETCONV_MPI_CHILD", &out)
        .status()
        .unwrap();
    assert!(status.success(), "mpirun failed");
    let read = |rank: usize| -> (Vec<f32>, f64) {
        let path = format!("{}.{rank}", out.display());
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let ((rank0, loss0), (rank1, loss1)) = (read(0), read(1));
    assert_eq!(
        rank0, rank1,
        "the ranks' weights are identical, bit for bit"
    );
    assert_eq!(loss0, loss1, "every rank reports the global batch's loss");
    let (single, loss) = train(false);
    let initial = NoBatchNorm::new(&ctx())
        .unwrap()
        .store()
        .flat()
        .0
        .to_vec()
        .unwrap();
    assert_ne!(single, initial, "trained");
    // Half-batch gradients summed vs one whole-batch sum: the same terms added in another
    // order, over 5 steps of momentum SGD.
    let tol = Tolerance {
        rtol: 1e-5,
        atol: 1e-6,
    }
    .scaled(&to_f64(&single));
    assert_close("2 ranks vs 1 process", &rank0, &to_f64(&single), tol);
    assert!(
        (loss0 - loss).abs() <= 1e-5 * loss.abs(),
        "{loss0} vs {loss}"
    );
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

#[test]
fn mpirun_hetconv_train_prints_and_writes_once_and_resumes_anywhere() {
    let Some(mut mpirun) = mpirun(600) else {
        return;
    };
    mpirun.args(["-n", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let run: PathBuf = dir.path().join("run");
    // Each rank opens the adapter of its local rank (modulo the count: lavapipe alone here).
    let out = hetconv_train(mpirun, &run, &["--max-steps", "8", "--adapter-per-rank"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("adapter  ").count(),
        1,
        "rank 0 alone prints:\n{text}"
    );
    assert!(
        text.contains("ranks    2 (MPI, data-parallel: 4 images per rank"),
        "{text}"
    );
    assert!(text.contains("epoch   1:"), "{text}");
    let steps = std::fs::read_to_string(run.join("steps.csv")).unwrap();
    assert_eq!(steps.lines().next(), Some("step,epoch,lr,loss,accuracy"));
    // The checkpoint of a 2-rank run resumes in one process, to the end of the run.
    let ckpt = run.join("checkpoint.safetensors");
    let out = hetconv_train(
        Command::new("env"),
        &run,
        &["--resume", ckpt.to_str().unwrap(), "--max-steps", "12"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("epoch   2:"), "{text}");
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

/// A rank killed mid-run ends the job with an error within a bounded time, instead of leaving
/// the other rank waiting in the gradient exchange.
#[test]
fn a_killed_rank_ends_the_job_with_an_error() {
    let Some(mut mpirun) = mpirun(600) else {
        return;
    };
    mpirun.args(["-n", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut job = train_command(mpirun, &run, "1000", &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Training is under way once the first epoch's checkpoint is written.
    let started = std::time::Instant::now();
    while !run.join("checkpoint.safetensors").exists() {
        assert!(
            started.elapsed().as_secs() < 300,
            "the 2-rank run wrote no checkpoint in 5 minutes"
        );
        assert!(job.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let ranks = children(job.id());
    assert_eq!(ranks.len(), 2, "mpirun's children: {ranks:?}");
    let killed = ranks.iter().max().unwrap();
    Command::new("sh")
        .args(["-c", &format!("kill -9 {killed}")])
        .status()
        .unwrap();
    let killed_at = std::time::Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().unwrap() {
            break status;
        }
        if killed_at.elapsed().as_secs() > 60 {
            let _ = job.kill();
            panic!("the job still ran 60 s after a rank was killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(!status.success(), "a job that lost a rank reports failure");
    eprintln!(
        "the job ended {:.1} s after rank pid {killed} was killed",
        killed_at.elapsed().as_secs_f64()
    );
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
