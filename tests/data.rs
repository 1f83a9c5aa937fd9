//! Data loading: the real CIFAR-10 fixture, IDX files, the embedded subset, bad files,
//! augmentation and batching.

mod common;

use hetconv::Error;
use hetconv::data::augment::{place, resized_crop};
use hetconv::data::{
    Augment, Batcher, DatasetKind, Normalize, Region, ResizedCrop, cifar, embedded, idx,
};

fn cifar_fixture() -> Vec<u8> {
    std::fs::read(common::fixtures().join("cifar10_test_first20.bin")).unwrap()
}

#[test]
fn reads_the_first_20_real_cifar10_test_images() {
    let data = cifar::parse(&cifar_fixture(), "cifar10_test_first20.bin").unwrap();
    assert_eq!(data.len(), 20);
    assert_eq!(
        data.labels,
        [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    );
    assert_eq!((data.channels, data.height, data.width), (3, 32, 32));
    assert_eq!(data.class_names[3], "cat");
    // Pixels are the record's bytes after the label, channel-major.
    assert_eq!(
        data.image(1).unwrap()[..5],
        cifar_fixture()[3073 + 1..3073 + 6]
    );
}

/// A folder with only the test batch evaluates, and never trains on the test set: its training
/// split is empty and says why.
#[test]
fn cifar_folder_with_only_a_test_batch_evaluates_but_has_no_training_images() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("test_batch.bin"), cifar_fixture()).unwrap();
    let splits = cifar::load_dir(dir.path()).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (0, 20));
    assert!(
        splits.train.name.contains("no data_batch_"),
        "{}",
        splits.train.name
    );
}

#[test]
fn bad_cifar_files_name_the_file_and_the_offset() {
    let mut bytes = cifar_fixture();
    bytes.truncate(3073 * 2 + 100);
    match cifar::parse(&bytes, "cut.bin") {
        Err(Error::Format {
            path,
            offset,
            message,
        }) => {
            assert_eq!(path.to_str(), Some("cut.bin"));
            assert_eq!(offset, 3073 * 2);
            assert!(message.contains("truncated"), "{message}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    let mut bytes = cifar_fixture();
    bytes[3073 * 5] = 12;
    let err = cifar::parse(&bytes, "bad-label.bin").unwrap_err();
    assert!(
        matches!(err, Error::Format { offset, .. } if offset == 3073 * 5),
        "{err}"
    );
    assert!(err.to_string().contains("label 12"), "{err}");
    assert!(
        cifar::parse(&[], "empty.bin")
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
}

fn idx_images(n: u32, rows: u32, cols: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2051u32, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

#[test]
fn idx_files_plain_and_gzipped_and_their_errors() {
    let images = idx_images(2, 2, 3, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    let mut labels = Vec::new();
    labels.extend_from_slice(&2049u32.to_be_bytes());
    labels.extend_from_slice(&2u32.to_be_bytes());
    labels.extend_from_slice(&[7, 1]);
    let data = idx::parse_pair(&images, "img", &labels, "lab", DatasetKind::Mnist).unwrap();
    assert_eq!(
        (data.len(), data.height, data.width, data.channels),
        (2, 2, 3, 1)
    );
    assert_eq!(data.image(1).unwrap().as_ref(), &[6, 7, 8, 9, 10, 11]);
    assert_eq!(data.labels, [7, 1]);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &images).unwrap();
    let (n, _, _, pixels) = idx::parse_images(&gz.finish().unwrap(), "img.gz").unwrap();
    assert_eq!((n, pixels.len()), (2, 12));

    let err = idx::parse_images(&labels, "labels-as-images")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("labels-as-images") && err.contains("bad magic 2049"),
        "{err}"
    );
    let err = idx::parse_images(&images[..20], "short").unwrap_err();
    assert!(matches!(err, Error::Format { offset: 20, .. }), "{err}");
    let mut bad = labels.clone();
    bad[9] = 10;
    let err = idx::parse_labels(&bad, "lab", 10).unwrap_err();
    assert!(
        matches!(err, Error::Format { offset: 9, .. }) && err.to_string().contains("label 10"),
        "{err}"
    );
}

#[test]
fn embedded_fashion_mnist_subset_is_real_and_complete() {
    let splits = embedded::fashion_mnist_subset().unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (6000, 1000));
    assert_eq!(
        (
            splits.train.height,
            splits.train.width,
            splits.train.channels
        ),
        (28, 28, 1)
    );
    splits.train.validate().unwrap();
    // All ten classes are present in both splits.
    for data in [&splits.train, &splits.test] {
        let mut seen = [0usize; 10];
        data.labels.iter().for_each(|&l| seen[l as usize] += 1);
        assert!(seen.iter().all(|&n| n > data.len() / 20), "{seen:?}");
    }
    // The original files' first test labels (Fashion-MNIST t10k: ankle boot, pullover, trouser...).
    assert_eq!(splits.test.labels[..5], [9, 2, 1, 1, 6]);
}

#[test]
fn placement_pads_28_to_32_and_flip_and_shift_move_pixels() {
    // A 1-channel 2x2 image into 4x4: centred with one pixel of zeros around.
    let img = [255u8, 0, 0, 255];
    let mut out = vec![9.0f32; 16];
    place(&img, 1, 2, 2, 4, (0, 0), false, None, &mut out);
    assert_eq!(
        out,
        [
            0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0.
        ]
    );
    place(&img, 1, 2, 2, 4, (0, 0), true, None, &mut out);
    assert_eq!(
        out,
        [
            0., 0., 0., 0., 0., 0., 1., 0., 0., 1., 0., 0., 0., 0., 0., 0.
        ]
    );
    // Shift by (1, 1): the crop window moves down-right, the image moves up-left.
    place(&img, 1, 2, 2, 4, (1, 1), false, None, &mut out);
    assert_eq!(
        out,
        [
            1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0.
        ]
    );
}

/// A batcher's normalisation must give one mean and one std per channel of the data: another
/// count is refused by name (an empty one once divided by zero).
#[test]
fn a_batcher_refuses_a_normalisation_of_another_channel_count() {
    let data = cifar::parse(&cifar_fixture(), "c").unwrap();
    for (mean, std) in [
        (vec![], vec![]),
        (vec![0.5], vec![0.2]),
        (vec![0.5; 3], vec![0.2; 2]),
    ] {
        let batcher = Batcher {
            batch_size: 2,
            size: 32,
            channels: 3,
            augment: None,
            normalize: Some(Normalize {
                mean: mean.clone(),
                std: std.clone(),
            }),
            shuffle: false,
            seed: 0,
        };
        let err = batcher.batch(&data, &[0, 1], 0).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} means and {} stds for 3-channel",
                mean.len(),
                std.len()
            )),
            "{mean:?} {std:?}: {err}"
        );
    }
    let good = Batcher {
        batch_size: 2,
        size: 32,
        channels: 1,
        augment: None,
        normalize: Some(Normalize {
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        }),
        shuffle: false,
        seed: 0,
    };
    let batch = good.batch(&data, &[0, 1], 0).unwrap();
    // Each colour plane normalised, then averaged to the model's one channel.
    let raw = data.image(0).unwrap();
    let want = (0..3)
        .map(|c| (f32::from(raw[c * 1024]) / 255.0 - 0.5) / 0.25)
        .sum::<f32>()
        / 3.0;
    assert!(
        (batch.pixels[0] - want).abs() < 1e-5,
        "{} vs {want}",
        batch.pixels[0]
    );
}

#[test]
fn batches_are_reproducible_and_orders_are_permutations() {
    let data = cifar::parse(&cifar_fixture(), "c").unwrap();
    let batcher = Batcher {
        batch_size: 4,
        size: 32,
        channels: 3,
        augment: Some(Augment::default()),
        normalize: None,
        shuffle: true,
        seed: 9,
    };
    let order = batcher.epoch_order(20, 3);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..20).collect::<Vec<_>>());
    assert_ne!(
        order,
        batcher.epoch_order(20, 4),
        "epochs get different orders"
    );
    assert_eq!(order, batcher.epoch_order(20, 3));
    let a = batcher.batch(&data, &order[..4], 17).unwrap();
    assert_eq!(
        a,
        batcher.batch(&data, &order[..4], 17).unwrap(),
        "same step, same augmentation"
    );
    assert_ne!(
        a.pixels,
        batcher.batch(&data, &order[..4], 18).unwrap().pixels
    );
    assert_eq!(
        a.labels,
        order[..4]
            .iter()
            .map(|&i| f32::from(data.labels[i]))
            .collect::<Vec<_>>()
    );
    assert!(a.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
    // Without augmentation a batch is the images scaled to [0, 1].
    let plain = Batcher {
        augment: None,
        ..batcher.clone()
    }
    .batch(&data, &[2], 0)
    .unwrap();
    let want: Vec<f32> = data
        .image(2)
        .unwrap()
        .iter()
        .map(|&b| f32::from(b) / 255.0)
        .collect();
    assert_eq!(plain.pixels, want);
}

/// torchvision's random-resized crop: regions inside the image, covering min_scale..1 of its
/// area at aspect ratios 3/4..4/3 (up to rounding), the centre-crop fallback, and bilinear
/// resizing that keeps a full region exact and reproduces a linear ramp between pixel centres.
#[test]
fn random_resized_crops_cover_the_asked_areas_and_resize_bilinearly() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let crop = ResizedCrop { min_scale: 0.25 };
    let (height, width) = (40, 60);
    for _ in 0..500 {
        let r = crop.draw(height, width, &mut rng);
        assert!(
            r.top + r.height <= height && r.left + r.width <= width,
            "{r:?}"
        );
        let area = (r.height * r.width) as f64 / (height * width) as f64;
        let ratio = r.width as f64 / r.height as f64;
        // Rounding each side to a whole pixel moves area and ratio a little.
        assert!((0.2..=1.0).contains(&area), "area {area} of {r:?}");
        assert!((0.70..=1.4).contains(&ratio), "ratio {ratio} of {r:?}");
    }
    // A 3:1 strip and a crop of all of it: no try fits, the centre crop of ratio 4/3 is used.
    let r = ResizedCrop { min_scale: 1.0 }.draw(10, 30, &mut rng);
    assert_eq!(
        r,
        Region {
            top: 0,
            left: 8,
            height: 10,
            width: 13
        }
    );

    // One 4x4 grey image whose value is 10 * column: the full region is the image.
    let pixels: Vec<u8> = (0..16).map(|i| (10 * (i % 4)) as u8).collect();
    let full = Region {
        top: 0,
        left: 0,
        height: 4,
        width: 4,
    };
    assert_eq!(resized_crop(&pixels, 1, (4, 4), full), pixels);
    // Columns 1..=2 stretched to the 4 columns: output centre k samples column
    // 1 + (k + 0.5) / 2 - 0.5, clamped to the region, a ramp from 10 to 20 (rounded to bytes).
    let middle = Region {
        top: 0,
        left: 1,
        height: 4,
        width: 2,
    };
    let out = resized_crop(&pixels, 1, (4, 4), middle);
    for row in out.chunks(4) {
        assert_eq!(row, [10, 13, 18, 20]);
    }
    // A crop fits the model's input as evaluation fits the whole image: a 28x28 image in a 32x32
    // input keeps its 2-pixel zero border.
    let data = embedded::fashion_mnist_subset().unwrap().test;
    let batcher = Batcher {
        batch_size: 1,
        size: 32,
        channels: 1,
        augment: Some(Augment::resized(0.5)),
        normalize: None,
        shuffle: false,
        seed: 1,
    };
    let one = batcher.batch(&data, &[0], 3).unwrap();
    for y in 0..32 {
        for x in 0..32 {
            if !(2..30).contains(&y) || !(2..30).contains(&x) {
                assert_eq!(one.pixels[y * 32 + x], 0.0, "border pixel ({y}, {x})");
            }
        }
    }

    // In batches: reproducible per step, different across steps, values in [0, 1].
    let data = cifar::parse(&cifar_fixture(), "c").unwrap();
    let batcher = Batcher {
        batch_size: 4,
        size: 24,
        channels: 3,
        augment: Some(Augment::resized(0.08)),
        normalize: None,
        shuffle: true,
        seed: 9,
    };
    let a = batcher.batch(&data, &[0, 1, 2, 3], 5).unwrap();
    assert_eq!(a, batcher.batch(&data, &[0, 1, 2, 3], 5).unwrap());
    assert_ne!(
        a.pixels,
        batcher.batch(&data, &[0, 1, 2, 3], 6).unwrap().pixels
    );
    assert_eq!(a.pixels.len(), 4 * 3 * 24 * 24);
    assert!(a.pixels.iter().all(|&v| (0.0..=1.0).contains(&v)));
}

/// An IDX header whose image count x rows x cols overflows is an error naming the file, not an
/// arithmetic panic.
#[test]
fn an_idx_header_that_overflows_is_an_error() {
    let mut bytes = vec![0, 0, 8, 3];
    for v in [u32::MAX, u32::MAX, u32::MAX] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend([0u8; 32]);
    let err = hetconv::data::idx::parse_images(&bytes, "huge-idx")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("huge-idx") && err.contains("more bytes"),
        "{err}"
    );
}

/// Image files: recognised by their contents (a PNG without an extension loads), centre-cropped
/// before resizing (a wide image's middle square is what the model sees), and an image over the
/// decoding limits is refused by name before anything large is allocated.
#[test]
fn image_files_are_sniffed_cropped_then_resized_and_limited() {
    use hetconv::data::image_file;
    let dir = tempfile::tempdir().unwrap();
    // 96 x 32: a black left third, a white middle third, a black right third.
    let wide = image::GrayImage::from_fn(96, 32, |x, _| {
        image::Luma([if (32..64).contains(&x) { 255 } else { 0 }])
    });
    let no_extension = dir.path().join("picture");
    wide.save_with_format(&no_extension, image::ImageFormat::Png)
        .unwrap();
    let pixels = image_file::load(&no_extension, 1, 32).unwrap();
    assert_eq!(pixels.len(), 32 * 32);
    assert!(
        pixels.iter().all(|&v| v == 1.0),
        "the middle square is white"
    );
    let too_wide = dir.path().join("too-wide.png");
    image::GrayImage::new(image_file::MAX_SIDE + 1, 1)
        .save(&too_wide)
        .unwrap();
    let err = image_file::load(&too_wide, 1, 32).unwrap_err().to_string();
    assert!(
        err.contains("too-wide.png") && err.contains("decoding limits"),
        "{err}"
    );
    let garbage = dir.path().join("garbage.png");
    std::fs::write(&garbage, b"not an image at all").unwrap();
    let err = image_file::load(&garbage, 1, 32).unwrap_err().to_string();
    assert!(
        err.contains("garbage.png") && err.contains("cannot decode"),
        "{err}"
    );
}

/// An image predicted from its file gets the input it gets from its image folder, for every
/// channel count a model may have: a colour image's R, G and B averaged for one channel (not
/// the weighted luma), as they are for three, averaged into each of 2 or 4; a grey image
/// repeated.
#[test]
fn an_image_file_gets_the_channels_its_folder_gives_it() {
    use hetconv::data::image_folder::{FolderOptions, load};
    use hetconv::data::{Batcher, image_file};
    let dir = tempfile::tempdir().unwrap();
    let colour = dir.path().join("train/a/colour.png");
    let grey = dir.path().join("train/b/grey.png");
    for path in [&colour, &grey] {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    }
    image::RgbImage::from_fn(8, 8, |x, y| {
        image::Rgb([(x * 30) as u8, (y * 30) as u8, 255 - (x * y) as u8])
    })
    .save(&colour)
    .unwrap();
    image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 8 + y) as u8 * 3]))
        .save(&grey)
        .unwrap();
    // The same two as the test split.
    for (class, path) in [("a", &colour), ("b", &grey)] {
        let copy = dir.path().join("val").join(class);
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let (splits, _) = load(dir.path(), FolderOptions::new(8)).unwrap();
    assert_eq!(splits.train.labels, [0, 1]);
    for channels in [1, 2, 3, 4] {
        let batch = Batcher::for_evaluation(2, 8, channels)
            .batch(&splits.train, &[0, 1], 0)
            .unwrap();
        let per_image = channels * 64;
        for (i, path) in [&colour, &grey].into_iter().enumerate() {
            let from_file = image_file::load(path, channels, 8).unwrap();
            let from_folder = &batch.pixels[i * per_image..(i + 1) * per_image];
            assert_eq!(from_file.len(), per_image);
            for (k, (f, d)) in from_file.iter().zip(from_folder).enumerate() {
                assert!(
                    (f - d).abs() <= 1e-6,
                    "{} with {channels} channels, value {k}: file {f}, folder {d}",
                    path.display()
                );
            }
        }
    }
}

/// Writes `DIR/<class>/<name>` images of one grey value per class (class index * 60), of
/// assorted sizes, formats and colour types.
fn write_class_images(dir: &std::path::Path, classes: &[&str], per_class: usize, grey_only: bool) {
    for (c, class) in classes.iter().enumerate() {
        let folder = dir.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        let v = (c * 60) as u8;
        for i in 0..per_class {
            let (w, h) = (20 + 7 * i as u32, 16 + 5 * (i as u32 % 3));
            let path = folder.join(format!(
                "img{i:02}.{}",
                if i % 2 == 0 { "png" } else { "jpg" }
            ));
            if grey_only || i % 3 != 1 {
                image::GrayImage::from_pixel(w, h, image::Luma([v]))
                    .save(&path)
                    .unwrap();
            } else if i % 2 == 0 {
                image::RgbaImage::from_pixel(w, h, image::Rgba([v, v, v, 255]))
                    .save(&path)
                    .unwrap();
            } else {
                image::RgbImage::from_pixel(w, h, image::Rgb([v, v, v]))
                    .save(&path)
                    .unwrap();
            }
        }
    }
}

#[test]
fn an_image_folder_loads_classes_sizes_colour_and_a_held_out_split() {
    use hetconv::data::image_folder::{FolderOptions, HOLD_OUT_EVERY, load};
    let dir = tempfile::tempdir().unwrap();
    write_class_images(dir.path(), &["cat", "ant", "bee"], 12, false);
    std::fs::write(dir.path().join("ant/.DS_Store"), b"hidden: ignored").unwrap();
    let options = FolderOptions::new(16);
    let (splits, report) = load(dir.path(), options).unwrap();
    assert!(report.skipped.is_empty());
    // Sorted class folders; one image in HOLD_OUT_EVERY of each class held out.
    assert_eq!(splits.train.class_names, ["ant", "bee", "cat"]);
    assert_eq!(HOLD_OUT_EVERY, 10);
    assert_eq!((splits.train.len(), splits.test.len()), (33, 3));
    assert_eq!(splits.test.labels, [0, 1, 2]);
    // RGB(A) files among them: three channels; every image 16 x 16 of its class's grey.
    assert_eq!(
        (
            splits.train.channels,
            splits.train.height,
            splits.train.width
        ),
        (3, 16, 16)
    );
    for (i, &label) in splits.train.labels.iter().enumerate() {
        let want = [60u8, 120, 0][usize::from(label)];
        let image = splits.train.image(i).unwrap();
        assert!(
            image.iter().all(|&p| p.abs_diff(want) <= 2),
            "image {i} of class {label}: {:?}",
            &image[..4]
        );
    }
    splits.train.validate().unwrap();

    // Grey files only: one channel.
    let grey = tempfile::tempdir().unwrap();
    write_class_images(grey.path(), &["a", "b"], 10, true);
    let (splits, _) = load(grey.path(), options).unwrap();
    assert_eq!(splits.train.channels, 1);
}

/// A folder over the memory limit is streamed: the same classes, labels, channels and pixels
/// as decoded up front, read from the files batch by batch; a file whose header reads but whose
/// pixels do not fails the batch that needs it, naming the file.
#[test]
fn a_streamed_image_folder_reads_what_an_in_memory_one_holds() {
    use hetconv::data::image_folder::{FolderOptions, load};
    use hetconv::data::{Batcher, Images};
    let dir = tempfile::tempdir().unwrap();
    write_class_images(dir.path(), &["cat", "ant", "bee"], 12, false);
    let options = FolderOptions::new(16);
    let (memory, report) = load(dir.path(), options).unwrap();
    assert!(!report.streamed);
    assert_eq!(report.decoded_bytes, 36 * 3 * 16 * 16);
    let streaming = FolderOptions {
        memory_limit: report.decoded_bytes - 1,
        ..options
    };
    let (streamed, report) = load(dir.path(), streaming).unwrap();
    assert!(report.streamed);
    for (memory, streamed) in [
        (&memory.train, &streamed.train),
        (&memory.test, &streamed.test),
    ] {
        assert!(streamed.is_streamed() && !memory.is_streamed());
        assert!(matches!(&streamed.images, Images::Files(f) if f.len() == memory.len()));
        assert_eq!(streamed.labels, memory.labels);
        assert_eq!(streamed.class_names, memory.class_names);
        assert_eq!(
            (streamed.channels, streamed.height, streamed.width),
            (3, 16, 16)
        );
        let all: Vec<usize> = (0..memory.len()).collect();
        let (a, b) = (
            memory.images_of(&all).unwrap(),
            streamed.images_of(&all).unwrap(),
        );
        assert_eq!(a, b);
        streamed.validate().unwrap();
        assert_eq!(streamed.take(2).len(), 2);
    }

    // A PNG cut a few bytes into its pixel data: the folder loads (headers only), the batch
    // that needs it fails by name.
    let whole = std::fs::read(dir.path().join("ant/img00.png")).unwrap();
    let pixels = whole.windows(4).position(|w| w == b"IDAT").unwrap();
    std::fs::write(dir.path().join("ant/img99.png"), &whole[..pixels + 8]).unwrap();
    let (streamed, _) = load(
        dir.path(),
        FolderOptions {
            memory_limit: 0,
            ..options
        },
    )
    .unwrap();
    let Images::Files(files) = &streamed.train.images else {
        panic!("streamed")
    };
    let cut = files
        .iter()
        .position(|f| f.ends_with("ant/img99.png"))
        .unwrap();
    let batcher = Batcher {
        batch_size: 2,
        size: 16,
        channels: 3,
        augment: None,
        normalize: None,
        shuffle: false,
        seed: 0,
    };
    batcher.batch(&streamed.train, &[0, 1], 0).unwrap();
    let err = batcher
        .batch(&streamed.train, &[0, cut], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("img99.png"), "{err}");
    // Decoding it all up front finds it at once.
    let err = load(dir.path(), options).unwrap_err().to_string();
    assert!(err.contains("img99.png"), "{err}");
}

#[test]
fn an_image_folder_with_splits_and_its_errors() {
    use hetconv::data::image_folder::{FolderOptions, load};
    let dir = tempfile::tempdir().unwrap();
    write_class_images(&dir.path().join("train"), &["x", "y"], 4, true);
    write_class_images(&dir.path().join("val"), &["y"], 2, true);
    let options = FolderOptions::new(8);
    let (splits, _) = load(dir.path(), options).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (8, 2));
    assert_eq!(
        splits.test.labels,
        [1, 1],
        "val/y is class 1 of train/'s classes"
    );

    // A corrupt file: an error naming it, or with skip_bad left out and reported.
    let bad = dir.path().join("train/x/broken.png");
    std::fs::write(&bad, b"\x89PNG but then nothing").unwrap();
    let err = load(dir.path(), options).unwrap_err().to_string();
    assert!(err.contains("broken.png"), "{err}");
    let (splits, report) = load(
        dir.path(),
        FolderOptions {
            skip_bad: true,
            ..options
        },
    )
    .unwrap();
    assert_eq!(splits.train.len(), 8);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].0.ends_with("train/x/broken.png"));

    // A val class that training lacks; train/ without val/; no class folders at all.
    write_class_images(&dir.path().join("val"), &["z"], 1, true);
    let err = load(dir.path(), options).unwrap_err().to_string();
    assert!(err.contains("\"z\""), "{err}");
    let lonely = tempfile::tempdir().unwrap();
    write_class_images(&lonely.path().join("train"), &["x"], 1, true);
    let err = load(lonely.path(), options).unwrap_err().to_string();
    assert!(err.contains("no val/, test/"), "{err}");
    let only_val = tempfile::tempdir().unwrap();
    write_class_images(&only_val.path().join("val"), &["x"], 1, true);
    let err = load(only_val.path(), options).unwrap_err().to_string();
    assert!(err.contains("no train/"), "{err}");
    let few = tempfile::tempdir().unwrap();
    write_class_images(few.path(), &["x", "y"], 9, true);
    let err = load(few.path(), options).unwrap_err().to_string();
    assert!(err.contains("no test images"), "{err}");
    let flat = tempfile::tempdir().unwrap();
    std::fs::write(flat.path().join("a.png"), b"x").unwrap();
    let err = load(flat.path(), options).unwrap_err().to_string();
    assert!(err.contains("no class folders"), "{err}");
}

/// Images in folders below a class folder belong to that class, as in torchvision's
/// `ImageFolder` (they were once left out without a word); hidden folders are skipped; a link
/// back to a folder above is an error naming the loop, not an endless walk.
#[test]
fn an_image_folder_reads_the_folders_below_each_class() {
    use hetconv::data::image_folder::{FolderOptions, load};
    let dir = tempfile::tempdir().unwrap();
    // 2 images in cat/, 12 in cat/2019/ and cat/2019/jan/; dog/ holds only a sub-folder.
    write_class_images(dir.path(), &["cat"], 2, true);
    write_class_images(&dir.path().join("cat/2019"), &["jan"], 5, true);
    write_class_images(&dir.path().join("cat"), &["2019"], 7, true);
    write_class_images(&dir.path().join("dog"), &["2020"], 10, true);
    write_class_images(&dir.path().join("dog/.thumbnails"), &["x"], 3, true);
    let options = FolderOptions::new(8);
    let (splits, report) = load(dir.path(), options).unwrap();
    assert!(report.skipped.is_empty());
    assert_eq!(splits.train.class_names, ["cat", "dog"]);
    assert_eq!(splits.train.len() + splits.test.len(), 14 + 10);
    let count = |label| {
        [&splits.train, &splits.test]
            .iter()
            .map(|s| s.labels.iter().filter(|&&l| l == label).count())
            .sum::<usize>()
    };
    assert_eq!((count(0), count(1)), (14, 10));
    #[cfg(unix)]
    {
        // A link back up: an error naming it; with skip_bad left out and reported.
        std::os::unix::fs::symlink(dir.path().join("cat"), dir.path().join("cat/2019/up")).unwrap();
        let err = load(dir.path(), options).unwrap_err().to_string();
        assert!(err.contains("2019/up") && err.contains("loop"), "{err}");
        let skip = FolderOptions {
            skip_bad: true,
            ..options
        };
        let (splits, report) = load(dir.path(), skip).unwrap();
        assert_eq!(splits.train.len() + splits.test.len(), 24);
        assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
        assert!(report.skipped[0].0.ends_with("cat/2019/up"));
        std::fs::remove_file(dir.path().join("cat/2019/up")).unwrap();
        // A dangling link the same way.
        std::os::unix::fs::symlink(dir.path().join("gone.png"), dir.path().join("dog/gone.png"))
            .unwrap();
        let err = load(dir.path(), options).unwrap_err().to_string();
        assert!(err.contains("dog/gone.png"), "{err}");
        let (_, report) = load(dir.path(), skip).unwrap();
        assert!(report.skipped[0].0.ends_with("dog/gone.png"));
    }
}

/// Split folders of names other than train/ and val/: valid/ (or validation/) serves as the
/// test split; folders that only look like splits are refused, not read as two classes.
#[test]
fn split_folders_by_other_names_and_folders_that_only_look_like_splits() {
    use hetconv::data::image_folder::{FolderOptions, load};
    let options = FolderOptions::new(8);
    let dir = tempfile::tempdir().unwrap();
    write_class_images(&dir.path().join("train"), &["x", "y"], 3, true);
    write_class_images(&dir.path().join("valid"), &["x", "y"], 1, true);
    let (splits, _) = load(dir.path(), options).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (6, 2));
    let other = tempfile::tempdir().unwrap();
    write_class_images(&other.path().join("training/x"), &["a"], 10, true);
    write_class_images(&other.path().join("Testing/x"), &["a"], 10, true);
    let err = load(other.path(), options).unwrap_err().to_string();
    assert!(
        err.contains("look like splits") && err.contains("training"),
        "{err}"
    );
}

/// A decoder's error is kept as the source of hetconv's (not flattened into a string), and the
/// message still names the file.
#[test]
fn decoder_errors_keep_their_source() {
    use std::error::Error as _;
    let image = hetconv::data::image_file::decode_bytes(
        b"\x89PNG\r\n\x1a\n not really a png",
        std::path::Path::new("x.png"),
        Default::default(),
    )
    .unwrap_err();
    let checkpoint =
        hetconv::checkpoint::Checkpoint::from_bytes(b"\x08\0\0\0\0\0\0\0[[[[[[[[", "x.safetensors")
            .unwrap_err();
    let gzip = hetconv::data::idx::parse_labels(b"\x1f\x8b\x08\0garbage", "x.gz", 10).unwrap_err();
    for (err, file) in [
        (image, "x.png"),
        (checkpoint, "x.safetensors"),
        (gzip, "x.gz"),
    ] {
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert!(err.source().is_some(), "{err}");
        assert!(err.to_string().starts_with(file), "{err}");
    }
}
