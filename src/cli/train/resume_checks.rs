//! The checks of a resumed or initialised run: every flag that defines the run must agree with
//! the checkpoint's run, or be left out; none is silently ignored.

use std::collections::BTreeSet;
use std::path::Path;

use hetconv::checkpoint::Checkpoint;
use hetconv::data::Augment;
use hetconv::nn::VggConfig;
use hetconv::train::TrainSettings;
use hetconv::{Context, Error, Precision, Result};

use super::TrainArgs;
use crate::cli::args::ModelName;

/// A run-defining value on `--resume`: the run's own (`saved`, None: none was set) unless the
/// flag gives another, which is refused.
pub(super) fn keep<T: PartialEq + std::fmt::Display>(
    flag: &str,
    given: Option<T>,
    saved: Option<T>,
    resume: &Path,
) -> Result<Option<T>> {
    let show = |v: &Option<T>| v.as_ref().map_or("none".to_string(), |v| v.to_string());
    if given.is_some() && given != saved {
        return Err(refused(flag, &show(&given), &show(&saved), resume));
    }
    Ok(saved)
}

/// The error for `flag`, given as `given`, against the resumed run's `saved` value.
pub(super) fn refused(flag: &str, given: &str, saved: &str, resume: &Path) -> Error {
    Error::InvalidArgument(format!(
        "{flag} {given} differs from the resumed run's {saved} ({}): leave it out to continue the run as it was, or start a new run from these weights with --init",
        resume.display()
    ))
}

/// On `--resume`, every training flag given on the command line must agree with the saved
/// settings (none is silently ignored); `--max-steps`, where the run stops, may change.
pub(super) fn check_resumed_settings(
    args: &TrainArgs,
    given: &BTreeSet<String>,
    ctx: &Context,
    saved: &TrainSettings,
    resume: &Path,
) -> Result<()> {
    // Each flag (clap id) with the setting it defines: (flag, on this command line, saved).
    let settings_of = |s: &TrainSettings, precision: Precision| -> Vec<(&'static str, String)> {
        let schedule = format!("{:?}", s.lr.schedule);
        vec![
            ("epochs", s.epochs.to_string()),
            ("batch_size", s.batch_size.to_string()),
            ("lr", s.lr.base_lr.to_string()),
            ("warmup_epochs", s.lr.warmup_epochs.to_string()),
            ("schedule", schedule.clone()),
            ("milestones", schedule.clone()),
            ("gamma", schedule),
            ("momentum", s.momentum.to_string()),
            ("weight_decay", s.weight_decay.to_string()),
            ("nesterov", s.nesterov.to_string()),
            ("no_augment", s.augment.is_none().to_string()),
            ("augment", augment_kind(s.augment).to_string()),
            ("crop_scale", crop_scale(s.augment)),
            ("no_shuffle", (!s.shuffle).to_string()),
            ("seed", s.seed.to_string()),
            ("report_every", s.report_every.to_string()),
            ("precision", precision.to_string()),
        ]
    };
    let mut wanted = settings_of(
        &args.settings(args.data.reads_image_folder()),
        ctx.precision(),
    );
    // --crop-scale alone keeps the run's augmentation: compare the value given.
    for (flag, value) in &mut wanted {
        if *flag == "crop_scale" {
            *value = (args.crop_scale as f32).to_string();
        }
    }
    let kept = settings_of(saved, saved.precision);
    for ((flag, new), (_, old)) in wanted.iter().zip(&kept) {
        if given.contains(*flag) && new != old {
            let flag = format!("--{}", flag.replace('_', "-"));
            return Err(refused(&flag, new, old, resume));
        }
    }
    Ok(())
}

/// The augmentation's kind as `--augment` names it (`none` for --no-augment).
pub(super) fn augment_kind(augment: Option<Augment>) -> &'static str {
    match augment {
        None => "none",
        Some(Augment {
            resized_crop: Some(_),
            ..
        }) => "resized",
        Some(_) => "pad",
    }
}

/// The random-resized crop's smallest area fraction (`none` without one).
fn crop_scale(augment: Option<Augment>) -> String {
    match augment.and_then(|a| a.resized_crop) {
        Some(crop) => crop.min_scale.to_string(),
        None => "none".into(),
    }
}

/// With `--init` or `--resume` the model's shape is the checkpoint's: --model, --part,
/// --widths and --width-mult must describe the same one, or be left out.
pub(super) fn check_shape_flags(
    args: &TrainArgs,
    checkpoint: &Checkpoint,
    from: &str,
    path: &Path,
) -> Result<()> {
    let Some(arch) = checkpoint.architecture.as_ref() else {
        return Err(Error::InvalidArgument(format!(
            "{from} {} holds a custom network: `hetconv train` trains the zoo's networks",
            path.display(),
        )));
    };
    let differs = |flag: &str, value: String| {
        Error::InvalidArgument(format!(
            "{flag} {value} does not describe the model of {from} {} ({arch}; P = {}): leave it out, the checkpoint's shape is used",
            path.display(),
            arch.parts(),
        ))
    };
    if let Some(model) = args.model {
        let name = match model {
            ModelName::Vgg16 => "vgg16".to_string(),
            ModelName::ResNet(depth) => format!("resnet{depth}"),
        };
        if name != arch.name() {
            return Err(differs("--model", name));
        }
    }
    if let Some(p) = args.part.filter(|p| *p != arch.parts()) {
        return Err(differs("--part", p.to_string()));
    }
    let widths = arch.vgg().map(|c| c.widths.clone());
    if let Some(w) = args.widths.as_ref().filter(|w| Some(*w) != widths.as_ref()) {
        return Err(differs("--widths", format!("{w:?}")));
    }
    if let Some(m) = args.width_mult {
        let scaled = VggConfig::paper(arch.parts()).with_width_mult(m).widths;
        if Some(scaled) != widths {
            return Err(differs("--width-mult", m.to_string()));
        }
    }
    Ok(())
}
