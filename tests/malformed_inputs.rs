//! The command line against malformed input, as a table: bad flags, data files, checkpoints,
//! image files and faults (a full disk, a folder that cannot hold files). Every case must fail
//! with a non-zero exit code, without a panic, and with a message that names what is at fault:
//! the flag, the file, the tensor or the value, each listed in the case.
//!
//! The fixtures are made here: a real checkpoint from a one-step run, and damaged copies of it
//! and of real data files (edited as bytes, so that nothing in hetconv had a say in them).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

/// One malformed input: the arguments and the words the error must contain.
struct Case {
    what: &'static str,
    args: Vec<String>,
    says: Vec<String>,
}

fn case(what: &'static str, args: &[&str], says: &[&str]) -> Case {
    Case {
        what,
        args: args.iter().map(|s| s.to_string()).collect(),
        says: says.iter().map(|s| s.to_string()).collect(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hetconv"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env("HETCONV_TUNE", "off")
        .output()
        .unwrap()
}

/// A safetensors file as its metadata and its tensors (name, header entry, bytes) in file
/// order; written back with the data packed again, so edits keep the file well-formed.
struct Safetensors {
    metadata: Option<Value>,
    tensors: Vec<(String, Map<String, Value>, Vec<u8>)>,
}

impl Safetensors {
    fn read(file: &Path) -> Self {
        let bytes = std::fs::read(file).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let mut header: Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let metadata = header.remove("__metadata__");
        let data = &bytes[8 + n..];
        let mut tensors: Vec<_> = header
            .into_iter()
            .map(|(name, entry)| {
                let entry = entry.as_object().unwrap().clone();
                let [a, b] = [0, 1].map(|i| entry["data_offsets"][i].as_u64().unwrap() as usize);
                (name, entry, data[a..b].to_vec())
            })
            .collect();
        tensors.sort_by_key(|(_, e, _)| e["data_offsets"][0].as_u64());
        Self { metadata, tensors }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut header = Map::new();
        let mut data: Vec<u8> = Vec::new();
        for (name, entry, bytes) in &self.tensors {
            let mut entry = entry.clone();
            entry["data_offsets"] = serde_json::json!([data.len(), data.len() + bytes.len()]);
            data.extend(bytes);
            header.insert(name.clone(), Value::Object(entry));
        }
        if let Some(m) = &self.metadata {
            header.insert("__metadata__".into(), m.clone());
        }
        let mut json = serde_json::to_vec(&header).unwrap();
        json.resize(json.len().div_ceil(8) * 8, b' ');
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        out.extend(data);
        out
    }

    /// The first tensor whose name passes `pick` (in name order).
    fn find(&self, pick: impl Fn(&str) -> bool) -> String {
        let mut names: Vec<&String> = self
            .tensors
            .iter()
            .map(|t| &t.0)
            .filter(|n| pick(n))
            .collect();
        names.sort();
        names
            .first()
            .unwrap_or_else(|| panic!("no such tensor"))
            .to_string()
    }

    fn tensor(&mut self, name: &str) -> &mut (String, Map<String, Value>, Vec<u8>) {
        self.tensors.iter_mut().find(|t| t.0 == name).unwrap()
    }

    /// Overwrites the first f32 of `name`.
    fn set_first(&mut self, name: &str, value: f32) {
        self.tensor(name).2[..4].copy_from_slice(&value.to_le_bytes());
    }

    /// Gives `name` another shape, its data cut or zero-padded to fit (4-byte values).
    fn reshape(&mut self, name: &str, shape: &[usize]) {
        let t = self.tensor(name);
        t.1["shape"] = serde_json::json!(shape);
        t.2.resize(shape.iter().product::<usize>() * 4, 0);
    }

    fn remove(&mut self, name: &str) {
        self.tensors.retain(|t| t.0 != name);
    }

    fn metadata(&mut self) -> &mut Map<String, Value> {
        self.metadata.as_mut().unwrap().as_object_mut().unwrap()
    }

    fn write(&self, file: &Path) -> PathBuf {
        std::fs::write(file, self.bytes()).unwrap();
        file.to_path_buf()
    }
}

/// A PNG chunk: length, kind, body, CRC.
fn chunk(kind: &[u8], body: &[u8]) -> Vec<u8> {
    let mut typed = kind.to_vec();
    typed.extend(body);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(&typed);
    let mut crc = flate2::Crc::new();
    crc.update(&typed);
    out.extend(crc.sum().to_be_bytes());
    out
}

/// A PNG's signature and IHDR (8-bit grey) for `width` x `height`, with nothing after it.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out
}

/// A valid 8-bit grey PNG of `side` x `side`.
fn png(side: u32) -> Vec<u8> {
    use std::io::Write;
    let mut raw = Vec::new();
    for y in 0..side {
        raw.push(0);
        raw.extend((0..side).map(|x| ((x * 37 + y * 11) % 256) as u8));
    }
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&raw).unwrap();
    let mut out = png_header(side, side);
    out.extend(chunk(b"IDAT", &zlib.finish().unwrap()));
    out.extend(chunk(b"IEND", &[]));
    out
}

fn idx_images(n: u32, side: u32) -> Vec<u8> {
    let mut out = [2051u32, n, side, side]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<_>>();
    out.extend((0..n * side * side).map(|i| (i % 251) as u8));
    out
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = [2049u32, labels.len() as u32]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<_>>();
    out.extend(labels);
    out
}

/// A folder `root/name` holding `files` (relative path, bytes).
fn folder(root: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = root.join(name);
    for (file, bytes) in files {
        let p = dir.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A gzip stream whose data is damaged after the header.
fn broken_gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    let mut out = enc.finish().unwrap();
    let mid = out.len() / 2;
    for b in &mut out[12..mid] {
        *b ^= 0x5a;
    }
    out
}

/// Flags: (what, arguments, words the error must contain); `CKPT` stands for a valid checkpoint.
#[rustfmt::skip]
const FLAG_CASES: &[(&str, &[&str], &[&str])] = &[
    ("unknown model", &["train", "--model", "alexnet"], &["--model", "alexnet"]),
    ("bench: P over a scaled width", &["bench", "--parts", "4,16", "--width-mult", "0.125"], &["--parts 16", "--width-mult"]),
    ("tune: P over a scaled width", &["tune", "--parts", "16", "--width-mult", "0.125"], &["--parts 16", "--width-mult"]),
    ("tune into a file that is not a tune cache", &["--tune-cache", "CKPT", "tune", "--parts", "4"], &["not a tune cache", "--tune-cache"]),
    ("export onto the checkpoint it reads", &["export", "--weights", "CKPT", "--output", "CKPT"], &["--output", "--weights"]),
    ("no such ResNet depth", &["train", "--model", "resnet21"], &["--model", "resnet21"]),
    ("a ResNet deeper than any", &["train", "--model", "resnet6000000002"], &["--model", "resnet6000000002"]),
    ("crop scale 0", &["train", "--crop-scale", "0"], &["--crop-scale"]),
    ("crop scale over 1", &["train", "--crop-scale", "1.5"], &["--crop-scale", "1.5"]),
    ("normalize without stds", &["train", "--normalize", "0.5"], &["--normalize"]),
    ("normalize std 0", &["train", "--normalize", "0.5/0"], &["--normalize"]),
    ("normalize NaN mean", &["train", "--normalize", "NaN/1"], &["--normalize"]),
    ("unknown augmentation", &["train", "--augment", "sideways"], &["--augment", "sideways"]),
    ("unknown schedule", &["train", "--schedule", "sometimes"], &["--schedule"]),
    ("13 widths needed", &["train", "--widths", "8,8"], &["--widths", "13"]),
    ("zero width", &["train", "--widths", "0,8,8,8,8,8,8,8,8,8,8,8,8"], &["--widths"]),
    ("P does not divide a width", &[ "train", "--part", "3", "--widths", "8,8,8,8,8,8,8,8,8,8,8,8,8", ], &["--part", "3"]),
    ("image size 0", &["train", "--image-size", "0"], &["--image-size"]),
    ("image size huge", &["train", "--image-size", "100000"], &["--image-size"]),
    ("train limit 0", &["train", "--train-limit", "0"], &["--train-limit"]),
    ("eval limit 0", &["train", "--eval-limit", "0"], &["--eval-limit"]),
    ("report every 0", &["train", "--report-every", "0"], &["--report-every"]),
    ("not a number", &["train", "--lr", "fast"], &["--lr", "fast"]),
    ("resume and init together", &["train", "--resume", "CKPT", "--init", "CKPT"], &["--resume", "--init"]),
    ("unknown subcommand", &["fit"], &["fit"]), ( "unknown conv algorithm", &["--conv", "turbo", "info"], &["--conv", "turbo"]),
    ("unknown tune mode", &["--tune", "sometimes", "info"], &["--tune", "sometimes"]),
    ("unknown export format", &[ "export", "--weights", "CKPT", "--output", "x", "--format", "tflite", ], &["--format", "tflite"]),
    ("unknown stored dtype", &[ "export", "--weights", "CKPT", "--output", "x", "--dtype", "f8", ], &["--dtype", "f8"]),
    ("bench unknown model", &["bench", "--model", "lenet"], &["--model", "lenet"]),
    ("flops unknown model", &["flops", "--model", "vgg19"], &["--model", "vgg19"]),
    ("negative learning rate", &["train", "--lr", "-0.5"], &["--lr", "-0.5"]),
    ("eval without weights", &["eval"], &["--weights"]),
];

#[test]
fn malformed_inputs_fail_cleanly_and_name_the_fault() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();

    // A real checkpoint: one step of a small VGG on the embedded data.
    let run_dir = root.join("run");
    let train = run(&[
        "train",
        "--width-mult",
        "0.125",
        "--part",
        "2",
        "--max-steps",
        "1",
        "--batch-size",
        "8",
        "--train-limit",
        "64",
        "--eval-limit",
        "8",
        "--out",
        path(&run_dir),
    ]
    .map(String::from));
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let good = run_dir.join("checkpoint.safetensors");
    let good_s = path(&good);
    let good_bytes = std::fs::read(&good).unwrap();
    let st = Safetensors::read(&good);
    let conv = st.find(|n| n.starts_with("features") && n.ends_with(".weight"));
    let var = st.find(|n| n.ends_with("running_var"));
    let linear = st.find(|n| n.starts_with("classifier") && n.ends_with("weight"));
    let momentum = st.find(|n| n.starts_with("optimizer.momentum."));

    let ckpt = |name: &str, edit: &dyn Fn(&mut Safetensors)| -> String {
        let mut s = Safetensors::read(&good);
        edit(&mut s);
        s.write(&root.join(name)).to_str().unwrap().to_string()
    };
    let raw = |name: &str, bytes: &[u8]| -> String {
        let p = root.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let nan = ckpt("nan.safetensors", &|s| s.set_first(&conv, f32::NAN));
    let inf = ckpt("inf.safetensors", &|s| s.set_first(&linear, f32::INFINITY));
    let neg_var = ckpt("negvar.safetensors", &|s| s.set_first(&var, -1.0));
    let nan_momentum = ckpt("nanmom.safetensors", &|s| s.set_first(&momentum, f32::NAN));
    let reshaped = ckpt("reshaped.safetensors", &|s| {
        let dims: Vec<usize> = s.tensor(&conv).1["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let n: usize = dims.iter().product();
        s.reshape(&conv, &[n / dims[0], dims[0]]);
    });
    let missing = ckpt("missing.safetensors", &|s| s.remove(&var));
    let extra = ckpt("extra.safetensors", &|s| {
        let copy = s.tensor(&var).clone();
        s.tensors
            .push(("features.99.running_var".into(), copy.1, copy.2));
    });
    let wrong_dtype = ckpt("dtype.safetensors", &|s| {
        s.tensor(&conv).1["dtype"] = "I32".into();
    });
    let bad_config = ckpt("config.safetensors", &|s| {
        s.metadata()["hetconv.config"] = "{\"model\": \"vgg16\", \"widths\": ".into();
    });
    let bad_classes = ckpt("classes.safetensors", &|s| {
        s.metadata()["hetconv.classes"] = "[\"cat\", 7]".into();
    });
    let bad_step = ckpt("step.safetensors", &|s| {
        s.metadata()["hetconv.step"] = "-3".into();
    });
    let bad_progress = ckpt("progress.safetensors", &|s| {
        s.metadata()["hetconv.progress"] = "{\"progress\": 12".into();
    });
    // A header that would ask for a network of terabytes: refused before anything is built.
    let config_with = |key: &'static str, value: Value| {
        move |s: &mut Safetensors| {
            let text = s.metadata()["hetconv.config"].as_str().unwrap().to_string();
            let mut config: Value = serde_json::from_str(&text).unwrap();
            config[key] = value.clone();
            s.metadata()["hetconv.config"] = config.to_string().into();
        }
    };
    let huge_image = ckpt(
        "hugeimage.safetensors",
        &config_with("image_size", 32000.into()),
    );
    let huge_hidden = ckpt(
        "hugehidden.safetensors",
        &config_with("hidden", 1_000_000_000u64.into()),
    );
    // Each size within bounds, the classifier together over them.
    let too_many = ckpt("toomany.safetensors", &|s| {
        config_with("image_size", 4096.into())(s);
        config_with("hidden", 16384.into())(s);
    });
    let alien_model = ckpt("alien.safetensors", &|s| {
        s.metadata()["hetconv.config"] = "{\"model\": \"alexnet\"}".into();
        s.metadata()["hetconv.model"] = "alexnet".into();
    });
    let short_momentum = ckpt("shortmom.safetensors", &|s| s.reshape(&momentum, &[1]));
    // A PyTorch file: no metadata, no optimizer state.
    let pytorch = |s: &mut Safetensors| {
        s.metadata = None;
        s.tensors.retain(|t| !t.0.starts_with("optimizer."));
    };
    let zero_d = ckpt("zerod.safetensors", &|s| {
        pytorch(s);
        s.reshape(&linear, &[]);
    });
    let torch_reshaped = ckpt("torch_reshaped.safetensors", &|s| {
        pytorch(s);
        s.reshape(&conv, &[9, 4]);
    });
    let no_progress = ckpt("noprogress.safetensors", &|s| pytorch(s));
    let empty = raw("empty.safetensors", b"");
    let truncated = raw("truncated.safetensors", &good_bytes[..good_bytes.len() / 2]);
    let huge_header = raw("hugeheader.safetensors", &{
        let mut b = (1u64 << 60).to_le_bytes().to_vec();
        b.extend(b"{}");
        b
    });
    let not_json = raw("notjson.safetensors", &{
        let mut b = 8u64.to_le_bytes().to_vec();
        b.extend(b"[[[[[[[[");
        b
    });
    let text = raw("text.safetensors", b"this is not a checkpoint\n");
    let ckpt_dir = folder(root, "ckpt_dir.safetensors", &[]);

    // Data: CIFAR-10 (real records), IDX and image folders, and damaged copies.
    let cifar = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cifar10_test_first20.bin"),
    )
    .unwrap();
    let cifar_ok = folder(
        root,
        "cifar_ok",
        &[
            ("data_batch_1.bin", cifar.clone()),
            ("test_batch.bin", cifar.clone()),
        ],
    );
    let cifar_truncated = folder(
        root,
        "cifar_truncated",
        &[
            ("data_batch_1.bin", cifar[..3073 * 3 - 7].to_vec()),
            ("test_batch.bin", cifar.clone()),
        ],
    );
    let cifar_label = folder(
        root,
        "cifar_label",
        &[
            ("data_batch_1.bin", {
                let mut c = cifar.clone();
                c[3073 * 2] = 12;
                c
            }),
            ("test_batch.bin", cifar.clone()),
        ],
    );
    let cifar_test_only = folder(
        root,
        "cifar_test_only",
        &[("test_batch.bin", cifar.clone())],
    );
    let cifar_empty = folder(
        root,
        "cifar_empty",
        &[
            ("data_batch_1.bin", vec![]),
            ("test_batch.bin", cifar.clone()),
        ],
    );
    let idx = |name: &str, train_images: Vec<u8>, train_labels: Vec<u8>| {
        folder(
            root,
            name,
            &[
                ("train-images-idx3-ubyte", train_images),
                ("train-labels-idx1-ubyte", train_labels),
                ("t10k-images-idx3-ubyte", idx_images(4, 28)),
                ("t10k-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3])),
            ],
        )
    };
    let idx_magic = idx(
        "idx_magic",
        {
            let mut b = idx_images(4, 28);
            b[3] = 0x04;
            b
        },
        idx_labels(&[0, 1, 2, 3]),
    );
    let idx_overflow = idx(
        "idx_overflow",
        {
            let mut b = idx_images(1, 28);
            b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
            b[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
            b
        },
        idx_labels(&[0]),
    );
    let idx_truncated = idx(
        "idx_truncated",
        {
            let mut b = idx_images(4, 28);
            b.truncate(b.len() - 100);
            b
        },
        idx_labels(&[0, 1, 2, 3]),
    );
    let idx_count = idx("idx_count", idx_images(4, 28), idx_labels(&[0, 1, 2]));
    let idx_label = idx("idx_label", idx_images(4, 28), idx_labels(&[0, 1, 10, 3]));
    let idx_header = idx("idx_header", vec![0, 0, 8], idx_labels(&[0]));
    let idx_gzip = folder(
        root,
        "idx_gzip",
        &[
            (
                "train-images-idx3-ubyte.gz",
                broken_gzip(&idx_images(4, 28)),
            ),
            ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3])),
            ("t10k-images-idx3-ubyte", idx_images(4, 28)),
            ("t10k-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3])),
        ],
    );
    let idx_missing = folder(
        root,
        "idx_missing",
        &[
            ("train-images-idx3-ubyte", idx_images(4, 28)),
            ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 3])),
        ],
    );
    let grey = png(12);
    let images = |name: &str, bad: &[(&str, Vec<u8>)]| {
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for class in ["cat", "dog"] {
            for i in 0..11 {
                files.push((format!("{class}/{i}.png"), grey.clone()));
            }
        }
        files.extend(bad.iter().map(|(n, b)| (n.to_string(), b.clone())));
        let refs: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
        folder(root, name, &refs)
    };
    let images_corrupt = images("images_corrupt", &[("dog/broken.png", grey[..40].to_vec())]);
    let images_huge = images("images_huge", &[("cat/huge.png", png_header(8_000_000, 1))]);
    let images_empty_file = images("images_empty_file", &[("cat/empty.png", vec![])]);
    let images_text = images("images_text", &[("dog/notes.jpg", b"not a jpeg".to_vec())]);
    let images_val_only = folder(root, "images_val_only", &[("val/cat/0.png", grey.clone())]);
    let images_no_test = folder(root, "images_no_test", &[("train/cat/0.png", grey.clone())]);
    let many_classes: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("c{i:03}/0.png"), grey.clone()))
        .collect();
    let images_many = folder(
        root,
        "images_many",
        &many_classes
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect::<Vec<_>>(),
    );
    let empty_dir = folder(root, "empty_dir", &[]);
    let nowhere = root.join("nowhere");
    let a_file = raw("a_file.bin", b"x");

    // Image files for predict.
    let png_truncated = raw("truncated.png", &grey[..grey.len() - 20]);
    let png_huge = raw("huge.png", &png_header(8_000_000, 1));
    let png_zero = raw("zero.png", &png_header(0, 5));
    let png_text = raw("text.png", b"hello");
    let png_empty = raw("empty.png", b"");
    let png_ok = raw("ok.png", &grey);

    let out_file = raw("out_is_a_file", b"x");
    let nothing_dir = path(&nowhere).to_string();

    let s = |p: &Path| path(p).to_string();
    let train_on = |data: &Path| -> Vec<String> {
        ["train", "--max-steps", "1", "--out"]
            .iter()
            .map(|s| s.to_string())
            .chain([s(&root.join("never")), "--data".into(), s(data)])
            .collect()
    };
    let eval = |weights: &str| -> Vec<String> {
        ["eval", "--limit", "8", "--weights", weights]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let case_v = |what: &'static str, args: Vec<String>, says: &[&str]| Case {
        what,
        args,
        says: says.iter().map(|s| s.to_string()).collect(),
    };

    let mut cases: Vec<Case> = FLAG_CASES
        .iter()
        .map(|(what, args, says)| {
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "CKPT" { good_s } else { a })
                .collect();
            case(what, &args, says)
        })
        .collect();
    let cache_under_a_file = format!("{a_file}/cache.json");
    cases.push(case(
        "tune into a cache whose folder is a file",
        &["--tune-cache", &cache_under_a_file, "tune", "--parts", "4"],
        &["tune cache", "--tune-cache", &cache_under_a_file],
    ));
    cases.extend([
        // Data.
        case_v(
            "missing data folder",
            train_on(&nowhere),
            &[&nothing_dir, "No such file"],
        ),
        case_v(
            "data is a file",
            train_on(Path::new(&a_file)),
            &["is a file"],
        ),
        case_v(
            "empty data folder",
            train_on(&empty_dir),
            &[path(&empty_dir), "no CIFAR-10"],
        ),
        case_v(
            "truncated CIFAR batch",
            train_on(&cifar_truncated),
            &["data_batch_1.bin", "record 2 is truncated"],
        ),
        case_v(
            "CIFAR label out of range",
            train_on(&cifar_label),
            &["data_batch_1.bin", "label 12", "record 2"],
        ),
        case_v(
            "CIFAR test batch only",
            train_on(&cifar_test_only),
            &["data_batch"],
        ),
        case_v(
            "empty CIFAR batch",
            train_on(&cifar_empty),
            &["data_batch_1.bin", "empty"],
        ),
        case_v(
            "IDX without --dataset",
            train_on(&idx_magic),
            &["--dataset"],
        ),
        case_v(
            "IDX bad magic",
            [
                train_on(&idx_magic),
                vec!["--dataset".into(), "fashion-mnist".into()],
            ]
            .concat(),
            &["train-images-idx3-ubyte", "magic"],
        ),
        case_v(
            "IDX header overflows",
            [
                train_on(&idx_overflow),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["train-images-idx3-ubyte", "header promises"],
        ),
        case_v(
            "IDX truncated images",
            [
                train_on(&idx_truncated),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["train-images-idx3-ubyte", "truncated"],
        ),
        case_v(
            "IDX label count differs",
            [
                train_on(&idx_count),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["4 images", "3 labels"],
        ),
        case_v(
            "IDX label out of range",
            [
                train_on(&idx_label),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["train-labels-idx1-ubyte", "label 10"],
        ),
        case_v(
            "IDX header cut short",
            [
                train_on(&idx_header),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["train-images-idx3-ubyte", "header"],
        ),
        case_v(
            "IDX damaged gzip",
            [
                train_on(&idx_gzip),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["train-images-idx3-ubyte.gz", "gzip"],
        ),
        case_v(
            "IDX test split missing",
            [
                train_on(&idx_missing),
                vec!["--dataset".into(), "mnist".into()],
            ]
            .concat(),
            &["t10k-images-idx3-ubyte", "missing"],
        ),
        case_v(
            "corrupt image in a folder",
            train_on(&images_corrupt),
            &["broken.png"],
        ),
        case_v(
            "image over the decoding limits",
            train_on(&images_huge),
            &["huge.png", "limits"],
        ),
        case_v(
            "empty image file",
            train_on(&images_empty_file),
            &["empty.png"],
        ),
        case_v(
            "text file as an image",
            train_on(&images_text),
            &["notes.jpg"],
        ),
        case_v("val without train", train_on(&images_val_only), &["train"]),
        case_v(
            "train split without a test split",
            train_on(&images_no_test),
            &["val"],
        ),
        case_v(
            "more than 256 classes",
            train_on(&images_many),
            &["300", "classes"],
        ),
        case_v(
            "image size with CIFAR files",
            [
                train_on(&cifar_ok),
                vec!["--image-size".into(), "16".into()],
            ]
            .concat(),
            &["--image-size"],
        ),
        case_v(
            "eval on data of other classes",
            [eval(good_s), vec!["--data".into(), s(&cifar_ok)]].concat(),
            &[good_s],
        ),
        case_v(
            "resume onto other data",
            ["train", "--resume", good_s, "--data", &s(&cifar_ok)]
                .map(String::from)
                .to_vec(),
            &[good_s, "give the run's --data"],
        ),
        case_v(
            "eval on an image folder of 2 classes",
            [
                eval(good_s),
                vec![
                    "--data".into(),
                    s(&images_corrupt),
                    "--skip-bad-images".into(),
                ],
            ]
            .concat(),
            &["class"],
        ),
        // Checkpoints.
        case_v(
            "missing checkpoint",
            eval(&s(&nowhere)),
            &[&nothing_dir, "No such file"],
        ),
        case_v(
            "checkpoint is a folder",
            eval(path(&ckpt_dir)),
            &[path(&ckpt_dir)],
        ),
        case_v("empty checkpoint", eval(&empty), &[&empty]),
        case_v(
            "truncated checkpoint",
            eval(&truncated),
            &[&truncated, "cut short"],
        ),
        case_v(
            "header length past the end",
            eval(&huge_header),
            &[&huge_header],
        ),
        case_v("header not JSON", eval(&not_json), &[&not_json]),
        case_v("text as a checkpoint", eval(&text), &[&text]),
        case_v("NaN weight", eval(&nan), &[&nan, &conv, "NaN"]),
        case_v(
            "predict with a NaN weight",
            ["predict", "--weights", &nan, &png_ok]
                .map(String::from)
                .to_vec(),
            &[&nan, &conv, "NaN"],
        ),
        case_v(
            "train --init from a NaN weight",
            [
                "train",
                "--max-steps",
                "1",
                "--init",
                &nan,
                "--out",
                &s(&root.join("never")),
            ]
            .map(String::from)
            .to_vec(),
            &[&nan, &conv, "NaN"],
        ),
        case_v(
            "train --init with other widths",
            [
                "train",
                "--max-steps",
                "1",
                "--init",
                good_s,
                "--widths",
                "8,8,8,8,8,8,8,8,8,8,8,8,8",
                "--out",
                &s(&root.join("never")),
            ]
            .map(String::from)
            .to_vec(),
            &["--widths", good_s],
        ),
        case_v("infinite weight", eval(&inf), &[&inf, &linear, "inf"]),
        case_v(
            "negative running variance",
            eval(&neg_var),
            &[&neg_var, &var],
        ),
        case_v(
            "NaN momentum on resume",
            vec!["train".into(), "--resume".into(), nan_momentum.clone()],
            &[&nan_momentum, &momentum],
        ),
        case_v(
            "momentum of the wrong length on resume",
            vec!["train".into(), "--resume".into(), short_momentum.clone()],
            &[&short_momentum, &momentum],
        ),
        case_v(
            "weight of another shape",
            eval(&reshaped),
            &[&reshaped, &conv],
        ),
        case_v("missing tensor", eval(&missing), &[&missing, &var]),
        case_v(
            "unexpected tensor",
            eval(&extra),
            &[&extra, "features.99.running_var"],
        ),
        case_v("integer weight", eval(&wrong_dtype), &[&wrong_dtype, &conv]),
        case_v(
            "damaged config",
            eval(&bad_config),
            &[&bad_config, "hetconv.config"],
        ),
        case_v(
            "damaged class names",
            eval(&bad_classes),
            &[&bad_classes, "hetconv.classes"],
        ),
        case_v(
            "damaged step",
            eval(&bad_step),
            &[&bad_step, "hetconv.step", "-3"],
        ),
        case_v(
            "damaged progress on resume",
            vec!["train".into(), "--resume".into(), bad_progress.clone()],
            &[&bad_progress, "hetconv.progress"],
        ),
        case_v(
            "an image size of 32000 in the config",
            eval(&huge_image),
            &[&huge_image, "image size 32000", "at most"],
        ),
        case_v(
            "a hidden layer of 10^9 units in the config",
            eval(&huge_hidden),
            &[&huge_hidden, "1000000000", "at most"],
        ),
        case_v(
            "a classifier of 10^10 weights in the config",
            eval(&too_many),
            &[&too_many, "parameters"],
        ),
        case_v(
            "unknown network in config",
            eval(&alien_model),
            &[&alien_model, "alexnet"],
        ),
        case_v(
            "0-D classifier weight (PyTorch file)",
            eval(&zero_d),
            &[&zero_d, &linear],
        ),
        case_v(
            "[9, 4] for a conv weight (PyTorch file)",
            eval(&torch_reshaped),
            &[&torch_reshaped, &conv],
        ),
        case_v(
            "resume from a file without progress",
            vec!["train".into(), "--resume".into(), no_progress.clone()],
            &[&no_progress, "--init"],
        ),
        // Image files.
        case_v(
            "missing image",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                s(&nowhere),
            ],
            &[&nothing_dir],
        ),
        case_v(
            "truncated PNG",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                png_truncated.clone(),
            ],
            &[&png_truncated],
        ),
        case_v(
            "8,000,000 x 1 PNG",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                png_huge.clone(),
            ],
            &[&png_huge, "limits"],
        ),
        case_v(
            "PNG without pixels",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                png_zero.clone(),
            ],
            &[&png_zero],
        ),
        case_v(
            "text as a PNG",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                png_text.clone(),
            ],
            &[&png_text],
        ),
        case_v(
            "empty PNG",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                png_empty.clone(),
            ],
            &[&png_empty],
        ),
        case_v(
            "folder as an image",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                s(&empty_dir),
            ],
            &[path(&empty_dir)],
        ),
        // Faults: a full disk, a place where no file can be made, an output that is a file.
        case_v(
            "predictions onto a full disk",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                "--output".into(),
                "/dev/full".into(),
                png_ok.clone(),
            ],
            &["/dev/full", "No space"],
        ),
        // Outputs that are the command's inputs: refused before anything is written.
        case_v(
            "predictions onto the checkpoint they read",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                "--output".into(),
                good_s.into(),
                png_ok.clone(),
            ],
            &["--output", "--weights"],
        ),
        case_v(
            "predictions onto an image they read",
            vec![
                "predict".into(),
                "--weights".into(),
                good_s.into(),
                "--output".into(),
                png_ok.clone(),
                png_ok.clone(),
            ],
            &["--output", &png_ok, "image"],
        ),
        case_v(
            "export onto a full disk",
            vec![
                "export".into(),
                "--weights".into(),
                good_s.into(),
                "--output".into(),
                "/dev/full".into(),
            ],
            &["/dev/full"],
        ),
        case_v(
            "ONNX onto a full disk",
            vec![
                "export".into(),
                "--weights".into(),
                good_s.into(),
                "--format".into(),
                "onnx".into(),
                "--output".into(),
                "/dev/full".into(),
            ],
            &["/dev/full"],
        ),
        case_v(
            "checkpoint where no file can be made",
            vec![
                "train".into(),
                "--max-steps".into(),
                "1".into(),
                "--save".into(),
                "/proc/hetconv.safetensors".into(),
                "--out".into(),
                s(&root.join("never2")),
            ],
            &["/proc/hetconv.safetensors"],
        ),
        case_v(
            "run folder is a file",
            vec![
                "train".into(),
                "--max-steps".into(),
                "1".into(),
                "--out".into(),
                out_file.clone(),
            ],
            &[&out_file],
        ),
        case_v(
            "tune report where no file can be made",
            vec![
                "tune".into(),
                "--parts".into(),
                "2".into(),
                "--batch".into(),
                "2".into(),
                "--width-mult".into(),
                "0.0625".into(),
                "--out".into(),
                "/proc/hetconv-tune.json".into(),
            ],
            &["/proc/hetconv-tune.md"],
        ),
        case_v(
            "bench table where no folder can be made",
            vec![
                "bench".into(),
                "--parts".into(),
                "2".into(),
                "--batch".into(),
                "2".into(),
                "--width-mult".into(),
                "0.0625".into(),
                "--steps".into(),
                "1".into(),
                "--warmup".into(),
                "1".into(),
                "--out".into(),
                "/proc/hetconv-bench/steps".into(),
            ],
            &["/proc/hetconv-bench"],
        ),
    ]);
    assert!(cases.len() >= 60, "{} cases", cases.len());

    // The inputs every case reads: no refused command may have changed them.
    let kept_inputs = [good_s, png_ok.as_str()].map(|p| (p, std::fs::read(p).unwrap()));
    let mut failures = Vec::new();
    for case in &cases {
        let out = run(&case.args);
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let missing: Vec<&String> = case
            .says
            .iter()
            .filter(|w| !err.contains(w.as_str()))
            .collect();
        if out.status.success()
            || code == Some(101)
            || err.contains("panicked")
            || !missing.is_empty()
        {
            failures.push(format!(
                "{}: exit {code:?}, lacks {missing:?}\n  hetconv {}\n  {}",
                case.what,
                case.args.join(" "),
                err.trim().replace('\n', "\n  ")
            ));
        }
    }
    for (path, bytes) in &kept_inputs {
        assert!(
            std::fs::read(path).unwrap() == *bytes,
            "{path} was changed by a refused command"
        );
    }
    println!(
        "{} malformed inputs, {} handled as required",
        cases.len(),
        cases.len() - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
