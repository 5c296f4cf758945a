//! Clipping an image to a geometry (MapProxy's `image/mask.py` `mask_image`): pixels whose
//! centre lies outside the polygons become transparent.
//!
//! The polygons are rasterized by an even-odd scanline over the pixel centres (holes and
//! several polygons need no special case). Written here because it is one small loop on the
//! image crate's buffer; geo has the geometry types and transformations but no rasterizer,
//! and a rasterizer crate (geo-rasterize) would add a dependency for these lines.

use geo::MultiPolygon;
use image::RgbaImage;

use crate::grid::Bbox;

/// Makes every pixel of `img` (covering `bbox`, in the geometry's SRS) outside `geometry`
/// transparent.
pub fn mask_outside(img: &mut RgbaImage, bbox: Bbox, geometry: &MultiPolygon<f64>) {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return;
    }
    let sx = f64::from(w) / (bbox[2] - bbox[0]);
    let sy = f64::from(h) / (bbox[3] - bbox[1]);
    // the edges in pixel coordinates
    let mut edges: Vec<((f64, f64), (f64, f64))> = Vec::new();
    for poly in &geometry.0 {
        for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
            for line in ring.lines() {
                let a = ((line.start.x - bbox[0]) * sx, (bbox[3] - line.start.y) * sy);
                let b = ((line.end.x - bbox[0]) * sx, (bbox[3] - line.end.y) * sy);
                if a.1 != b.1
                    && a.0.is_finite()
                    && a.1.is_finite()
                    && b.0.is_finite()
                    && b.1.is_finite()
                {
                    edges.push((a, b));
                }
            }
        }
    }
    let mut xs: Vec<f64> = Vec::new();
    for j in 0..h {
        let y = f64::from(j) + 0.5;
        xs.clear();
        for &((x0, y0), (x1, y1)) in &edges {
            // half-open in y: a vertex on the scanline is counted once
            if (y0 <= y && y < y1) || (y1 <= y && y < y0) {
                xs.push(x0 + (y - y0) * (x1 - x0) / (y1 - y0));
            }
        }
        xs.sort_by(f64::total_cmp);
        // the pixels whose centre is inside a span [xs[2k], xs[2k+1])
        let mut inside = vec![false; w as usize];
        for span in xs.chunks_exact(2) {
            let from = (span[0] - 0.5).ceil().max(0.0);
            let to = (span[1] - 0.5).ceil().min(f64::from(w));
            if from < to {
                inside[from as usize..to as usize].fill(true);
            }
        }
        for (i, keep) in inside.iter().enumerate() {
            if !keep {
                img.get_pixel_mut(i as u32, j).0[3] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_with_a_hole() {
        let mut img = RgbaImage::from_pixel(10, 10, image::Rgba([1, 2, 3, 255]));
        let outer = geo::LineString::from(vec![(2.0, 2.0), (8.0, 2.0), (8.0, 8.0), (2.0, 8.0)]);
        let hole = geo::LineString::from(vec![(4.0, 4.0), (6.0, 4.0), (6.0, 6.0), (4.0, 6.0)]);
        let g = MultiPolygon(vec![geo::Polygon::new(outer, vec![hole])]);
        mask_outside(&mut img, [0.0, 0.0, 10.0, 10.0], &g);
        let a = |i, j| img.get_pixel(i, j).0[3];
        assert_eq!(a(0, 0), 0);
        assert_eq!(a(2, 2), 255);
        assert_eq!(a(7, 7), 255);
        assert_eq!(a(8, 5), 0);
        assert_eq!(a(4, 4), 0, "the hole");
        assert_eq!(a(3, 4), 255);
        // y grows down in the image: row 1 is y 8..9 (outside)
        assert_eq!(a(5, 1), 0);
        assert_eq!(a(5, 2), 255);
    }
}
