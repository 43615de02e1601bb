// SPDX-License-Identifier: MIT OR Apache-2.0

//! The heat-map colour maps as 256-entry RGB lookup tables.

use super::Colormap;

pub type Rgb = [u8; 3];

/// The 256 colours of `colormap`, from the lowest anomaly value (index 0) to the highest.
pub fn lut(colormap: Colormap) -> [Rgb; 256] {
    let f: fn(f64) -> [f64; 3] = match colormap {
        Colormap::Turbo => turbo,
        Colormap::Jet => jet,
        Colormap::Inferno => inferno,
    };
    std::array::from_fn(|i| {
        let [r, g, b] = f(i as f64 / 255.0);
        [to_u8(r), to_u8(g), to_u8(b)]
    })
}

fn to_u8(v: f64) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Turbo (Google, 2019) through its published degree-5 polynomial approximation.
fn turbo(x: f64) -> [f64; 3] {
    let poly = |c: [f64; 6]| c.iter().rev().fold(0.0, |acc, &k| acc * x + k);
    [
        poly([
            0.135_721_38,
            4.615_392_60,
            -42.660_322_58,
            132.131_082_34,
            -152.942_393_96,
            59.286_379_43,
        ]),
        poly([
            0.091_402_61,
            2.194_188_39,
            4.842_966_58,
            -14.185_033_33,
            4.277_298_57,
            2.829_566_04,
        ]),
        poly([
            0.106_673_30,
            12.641_946_08,
            -60.582_048_36,
            110.362_767_71,
            -89.903_109_12,
            27.348_249_73,
        ]),
    ]
}

/// The classic MATLAB jet: dark blue, blue, cyan, yellow, red, dark red.
fn jet(x: f64) -> [f64; 3] {
    let ramp = |centre: f64| 1.5 - (4.0 * x - centre).abs();
    [ramp(3.0), ramp(2.0), ramp(1.0)]
}

/// Inferno (matplotlib), piecewise linear through nine of its colours.
fn inferno(x: f64) -> [f64; 3] {
    const STOPS: [[f64; 3]; 9] = [
        [0.0, 0.0, 4.0],
        [27.0, 12.0, 65.0],
        [74.0, 12.0, 107.0],
        [120.0, 28.0, 109.0],
        [165.0, 44.0, 96.0],
        [207.0, 68.0, 70.0],
        [237.0, 105.0, 37.0],
        [251.0, 155.0, 6.0],
        [252.0, 255.0, 164.0],
    ];
    let pos = x.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let t = pos - i as f64;
    std::array::from_fn(|c| (STOPS[i][c] * (1.0 - t) + STOPS[i + 1][c] * t) / 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_of_the_maps() {
        let t = lut(Colormap::Turbo);
        // Turbo runs from a dark (blue-violet) to a dark red, through cyan and orange.
        assert!(t[0].iter().all(|&c| c < 64), "{:?}", t[0]);
        assert!(t[64][2] > 200 && t[64][0] < 64, "{:?}", t[64]);
        assert!(t[192][0] > 230 && t[192][2] < 64, "{:?}", t[192]);
        assert!(
            t[255][0] > 100 && t[255][1] < 40 && t[255][2] < 40,
            "{:?}",
            t[255]
        );
        let j = lut(Colormap::Jet);
        assert_eq!(j[0], [0, 0, 128]);
        assert_eq!(j[255], [128, 0, 0]);
        let i = lut(Colormap::Inferno);
        assert_eq!(i[0], [0, 0, 4]);
        assert_eq!(i[255], [252, 255, 164]);
    }
}
