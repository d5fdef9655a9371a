//! Plane geometry of text boxes, as a text detector's post-processing needs it: the
//! convex hull and minimum-area rectangle of a region's points (OpenCV's `minAreaRect`
//! and `boxPoints`), the corner order PaddleOCR's detectors use, a polygon's area and
//! perimeter, and the reading order of boxes on a page.
//!
//! Written here rather than taken from `imageproc`: its `min_area_rect` skips the hull's
//! closing edge (it can miss the minimum) and rounds the corners to the point type,
//! where the detector needs float corners and the rectangle's shorter side.

/// A point `(x, y)` in pixels (y grows downwards).
pub type Point = (f64, f64);

/// The convex hull of `points`, counter-clockwise in a y-up frame (Andrew's monotone
/// chain), without repeated or collinear points. Fewer than three distinct points give
/// those points.
pub fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut p: Vec<Point> = points.to_vec();
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross =
        |o: Point, a: Point, b: Point| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<Point> = Vec::with_capacity(2 * p.len());
    for pass in [p.clone(), p.iter().rev().copied().collect()] {
        let floor = hull.len();
        for q in pass {
            while hull.len() >= floor + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// The smallest rectangle around some points, at any angle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    /// The corners, in order around the rectangle.
    pub corners: [Point; 4],
    /// The lengths of its two sides.
    pub width: f64,
    pub height: f64,
}

impl RotatedRect {
    /// The shorter side (what a detector compares with its minimum box size).
    pub fn short_side(&self) -> f64 {
        self.width.min(self.height)
    }

    /// The rectangle grown by `distance` on every side, about its centre.
    ///
    /// This is the minimum-area rectangle of the rectangle offset with round joins (what
    /// a DB text detector's "unclip" computes with a polygon clipper): at any angle t
    /// the bounding rectangle of the offset shape has area
    /// (w|cos t| + h|sin t| + 2d)(w|sin t| + h|cos t| + 2d), which is smallest at t = 0.
    pub fn grown(&self, distance: f64) -> RotatedRect {
        let [a, b, _, d] = self.corners;
        let unit = |from: Point, to: Point, len: f64| {
            if len > 0.0 {
                ((to.0 - from.0) / len, (to.1 - from.1) / len)
            } else {
                (0.0, 0.0)
            }
        };
        // The directions of the two sides from the first corner.
        let u = unit(a, b, self.width);
        let v = unit(a, d, self.height);
        let shift = |p: Point, su: f64, sv: f64| {
            (
                p.0 + distance * (su * u.0 + sv * v.0),
                p.1 + distance * (su * u.1 + sv * v.1),
            )
        };
        let [p0, p1, p2, p3] = self.corners;
        RotatedRect {
            corners: [
                shift(p0, -1.0, -1.0),
                shift(p1, 1.0, -1.0),
                shift(p2, 1.0, 1.0),
                shift(p3, -1.0, 1.0),
            ],
            width: self.width + 2.0 * distance,
            height: self.height + 2.0 * distance,
        }
    }
}

/// How far a DB text detector grows a shrunk text region back ("unclip"): its area
/// times `ratio` over its perimeter (PaddleOCR's `unclip_ratio`, 1.5 to 2).
pub fn unclip_distance(polygon: &[Point], ratio: f64) -> f64 {
    let perimeter = polygon_perimeter(polygon);
    if perimeter == 0.0 {
        0.0
    } else {
        polygon_area(polygon) * ratio / perimeter
    }
}

/// A closed polygon offset outwards by `delta` with round joins, as the Clipper library
/// (6.4, `ClipperOffset` with `JT_ROUND`, arc tolerance 0.25) computes it on integer
/// coordinates: corners truncated to whole units, the polygon turned to positive
/// orientation, each edge moved out along its normal, each convex corner filled with
/// an arc of `pi / acos(1 - 0.25 / delta)` steps per turn, every point rounded half away
/// from zero. For a convex polygon (a text box) this is the offset polygon Clipper gives;
/// the rounding is what makes a detector's grown box lean by a pixel as PaddleOCR's does.
pub fn offset_round(polygon: &[Point], delta: f64) -> Vec<Point> {
    let mut src: Vec<(f64, f64)> = polygon.iter().map(|p| (p.0.trunc(), p.1.trunc())).collect();
    src.dedup();
    while src.len() > 1 && src.first() == src.last() {
        src.pop();
    }
    let n = src.len();
    if n < 3 || delta <= 0.0 {
        return src;
    }
    // Positive orientation (Clipper's `Orientation`: area >= 0 in its frame).
    let twice_area: f64 = (0..n)
        .map(|i| {
            let (a, b) = (src[i], src[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    if twice_area < 0.0 {
        src.reverse();
    }
    let round = |v: f64| {
        if v < 0.0 {
            (v - 0.5).trunc()
        } else {
            (v + 0.5).trunc()
        }
    };
    let tolerance = if 0.25 > delta * 0.25 {
        delta * 0.25
    } else {
        0.25
    };
    let mut steps = std::f64::consts::PI / (1.0 - tolerance / delta).acos();
    if steps > delta * std::f64::consts::PI {
        steps = delta * std::f64::consts::PI;
    }
    let (sin, cos) = (std::f64::consts::TAU / steps).sin_cos();
    let per_rad = steps / std::f64::consts::TAU;
    let normal = |a: (f64, f64), b: (f64, f64)| {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        if dx == 0.0 && dy == 0.0 {
            return (0.0, 0.0);
        }
        let f = 1.0 / (dx * dx + dy * dy).sqrt();
        (dy * f, -dx * f)
    };
    let normals: Vec<(f64, f64)> = (0..n).map(|j| normal(src[j], src[(j + 1) % n])).collect();
    let mut out = Vec::new();
    let mut k = n - 1;
    for j in 0..n {
        let (nk, nj, p) = (normals[k], normals[j], src[j]);
        let at = |nx: f64, ny: f64| (round(p.0 + nx * delta), round(p.1 + ny * delta));
        let sin_a = nk.0 * nj.1 - nj.0 * nk.1;
        let cos_a = nk.0 * nj.0 + nk.1 * nj.1;
        if (sin_a * delta).abs() < 1.0 && cos_a > 0.0 {
            out.push(at(nk.0, nk.1));
        } else if sin_a.clamp(-1.0, 1.0) * delta < 0.0 {
            out.push(at(nk.0, nk.1));
            out.push(p);
            out.push(at(nj.0, nj.1));
        } else {
            let a = sin_a.clamp(-1.0, 1.0).atan2(cos_a);
            let count = (round(per_rad * a.abs()) as i64).max(1);
            let (mut x, mut y) = nk;
            for _ in 0..count {
                out.push(at(x, y));
                (x, y) = (x * cos - sin * y, x * sin + y * cos);
            }
            out.push(at(nj.0, nj.1));
        }
        k = j;
    }
    out
}

/// The minimum-area rectangle around `points` (rotating calipers over every edge of the
/// convex hull, the closing one included). `None` without points.
pub fn min_area_rect(points: &[Point]) -> Option<RotatedRect> {
    let hull = convex_hull(points);
    match hull.len() {
        0 => return None,
        1 => {
            let p = hull[0];
            return Some(RotatedRect {
                corners: [p; 4],
                width: 0.0,
                height: 0.0,
            });
        }
        _ => {}
    }
    let mut best: Option<(f64, RotatedRect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let len = ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
        if len == 0.0 {
            continue;
        }
        // The edge's direction and its normal: every hull point projected on both.
        let (ux, uy) = ((b.0 - a.0) / len, (b.1 - a.1) / len);
        let (vx, vy) = (-uy, ux);
        let (mut u_min, mut u_max, mut v_min, mut v_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in &hull {
            let u = x * ux + y * uy;
            let v = x * vx + y * vy;
            u_min = u_min.min(u);
            u_max = u_max.max(u);
            v_min = v_min.min(v);
            v_max = v_max.max(v);
        }
        let area = (u_max - u_min) * (v_max - v_min);
        if best.as_ref().is_some_and(|(a, _)| *a <= area) {
            continue;
        }
        let at = |u: f64, v: f64| (u * ux + v * vx, u * uy + v * vy);
        let rect = RotatedRect {
            corners: [
                at(u_min, v_min),
                at(u_max, v_min),
                at(u_max, v_max),
                at(u_min, v_max),
            ],
            width: u_max - u_min,
            height: v_max - v_min,
        };
        best = Some((area, rect));
    }
    best.map(|(_, r)| r)
}

/// A rectangle's corners in the order PaddleOCR's detectors give a text box (its
/// `get_mini_boxes`): sorted by x, the left pair ordered by y into top-left and
/// bottom-left, the right pair into top-right and bottom-right; returned as
/// `[top-left, top-right, bottom-right, bottom-left]`.
pub fn box_corners(corners: [Point; 4]) -> [Point; 4] {
    let mut p = corners;
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (tl, bl) = if p[1].1 > p[0].1 {
        (p[0], p[1])
    } else {
        (p[1], p[0])
    };
    let (tr, br) = if p[3].1 > p[2].1 {
        (p[2], p[3])
    } else {
        (p[3], p[2])
    };
    [tl, tr, br, bl]
}

/// A simple polygon's area (shoelace formula; positive whatever the orientation).
pub fn polygon_area(polygon: &[Point]) -> f64 {
    let n = polygon.len();
    let twice: f64 = (0..n)
        .map(|i| {
            let (a, b) = (polygon[i], polygon[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    twice.abs() / 2.0
}

/// A closed polygon's perimeter.
pub fn polygon_perimeter(polygon: &[Point]) -> f64 {
    let n = polygon.len();
    (0..n)
        .map(|i| {
            let (a, b) = (polygon[i], polygon[(i + 1) % n]);
            ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt()
        })
        .sum()
}

/// Text boxes (`[top-left, top-right, bottom-right, bottom-left]`) in reading order, as
/// PaddleOCR's `sorted_boxes` orders them: by the top-left corner's y, then x; then boxes
/// whose tops are within `line_tolerance` pixels of each other (one line) are put left to
/// right. Returns the boxes' indices in that order.
pub fn reading_order(boxes: &[[Point; 4]], line_tolerance: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // Stable, as Python's `sorted`.
    order.sort_by(|&a, &b| {
        let (pa, pb) = (boxes[a][0], boxes[b][0]);
        pa.1.total_cmp(&pb.1).then(pa.0.total_cmp(&pb.0))
    });
    for i in 0..order.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (next, this) = (boxes[order[j + 1]][0], boxes[order[j]][0]);
            if (next.1 - this.1).abs() < line_tolerance && next.0 < this.0 {
                order.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// The points of a `w` x `h` rectangle turned by `angle` radians about `(cx, cy)`,
    /// its edges sampled as a contour would be, and some points inside.
    fn turned(cx: f64, cy: f64, w: f64, h: f64, angle: f64) -> Vec<Point> {
        let (s, c) = angle.sin_cos();
        let mut out = Vec::new();
        for i in 0..=20 {
            for j in 0..=20 {
                let (u, v) = (w * (i as f64 / 20.0 - 0.5), h * (j as f64 / 20.0 - 0.5));
                out.push((cx + u * c - v * s, cy + u * s + v * c));
            }
        }
        out
    }

    #[test]
    fn the_hull_keeps_only_the_outer_corners() {
        let points = [
            (0.0, 0.0),
            (4.0, 0.0),
            (4.0, 3.0),
            (0.0, 3.0),
            (2.0, 1.0),
            (2.0, 0.0),
            (0.0, 0.0),
        ];
        let mut hull = convex_hull(&points);
        hull.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        assert_eq!(hull, vec![(0.0, 0.0), (0.0, 3.0), (4.0, 0.0), (4.0, 3.0)]);
        assert_eq!(convex_hull(&[(1.0, 1.0), (1.0, 1.0)]), vec![(1.0, 1.0)]);
    }

    #[test]
    fn the_minimum_rectangle_of_a_turned_box_is_that_box() {
        for angle in [0.0f64, 0.3, -0.7, 1.2, std::f64::consts::FRAC_PI_4] {
            let r = min_area_rect(&turned(50.0, 40.0, 30.0, 8.0, angle)).unwrap();
            let (long, short) = (r.width.max(r.height), r.short_side());
            assert!(close(long, 30.0) && close(short, 8.0), "{angle}: {r:?}");
            assert!(close(polygon_area(&r.corners), 240.0), "{angle}: {r:?}");
            // Centred where the box is.
            let cx = r.corners.iter().map(|p| p.0).sum::<f64>() / 4.0;
            let cy = r.corners.iter().map(|p| p.1).sum::<f64>() / 4.0;
            assert!(close(cx, 50.0) && close(cy, 40.0), "{angle}: {r:?}");
        }
        // The closing edge of the hull counts: an obtuse triangle's rectangle lies along
        // its longest side (area 10; 12 along the next best), the hull's last edge.
        let r = min_area_rect(&[(0.0, 0.0), (10.0, 0.0), (12.0, 1.0)]).unwrap();
        assert!(close(r.width * r.height, 10.0), "{r:?}");
        assert!(min_area_rect(&[]).is_none());
        assert_eq!(min_area_rect(&[(3.0, 4.0)]).unwrap().short_side(), 0.0);
    }

    #[test]
    fn unclipping_grows_the_rectangle_on_every_side() {
        for angle in [0.0f64, 0.4, -1.1] {
            let r = min_area_rect(&turned(20.0, 30.0, 40.0, 10.0, angle)).unwrap();
            let d = unclip_distance(&r.corners, 1.6);
            // 400 x 1.6 / 100.
            assert!(close(d, 6.4), "{d}");
            let g = r.grown(d);
            assert!(
                close(g.width.max(g.height), 52.8) && close(g.short_side(), 22.8),
                "{g:?}"
            );
            // The grown corners make the same rectangle the hull of an offset shape would:
            // its own minimum rectangle, centred where the original was.
            let again = min_area_rect(&g.corners).unwrap();
            assert!(
                close(polygon_area(&again.corners), 52.8 * 22.8),
                "{again:?}"
            );
            let centre = |c: &[Point; 4]| {
                (
                    c.iter().map(|p| p.0).sum::<f64>() / 4.0,
                    c.iter().map(|p| p.1).sum::<f64>() / 4.0,
                )
            };
            let (a, b) = (centre(&r.corners), centre(&g.corners));
            assert!(close(a.0, b.0) && close(a.1, b.1));
            // Every point of the offset shape (the rectangle plus a disk of radius d) lies
            // inside the grown rectangle.
            let inside = |p: Point| {
                let [q0, q1, _, q3] = g.corners;
                let (ux, uy) = (q1.0 - q0.0, q1.1 - q0.1);
                let (vx, vy) = (q3.0 - q0.0, q3.1 - q0.1);
                let (px, py) = (p.0 - q0.0, p.1 - q0.1);
                let s = (px * ux + py * uy) / (ux * ux + uy * uy);
                let t = (px * vx + py * vy) / (vx * vx + vy * vy);
                (-1e-9..=1.0 + 1e-9).contains(&s) && (-1e-9..=1.0 + 1e-9).contains(&t)
            };
            for c in r.corners {
                for k in 0..16 {
                    let a = k as f64 * std::f64::consts::PI / 8.0;
                    assert!(
                        inside((c.0 + d * a.cos(), c.1 + d * a.sin())),
                        "{angle} {k}"
                    );
                }
            }
        }
        assert_eq!(unclip_distance(&[(1.0, 1.0); 4], 1.6), 0.0);
    }

    #[test]
    fn corners_come_in_the_detectors_order() {
        let c = box_corners([(10.0, 20.0), (0.0, 0.0), (10.0, 0.0), (0.0, 20.0)]);
        assert_eq!(c, [(0.0, 0.0), (10.0, 0.0), (10.0, 20.0), (0.0, 20.0)]);
        // A box tilted down to the right.
        let c = box_corners([(1.0, 10.0), (0.0, 1.0), (30.0, 4.0), (31.0, 13.0)]);
        assert_eq!(c, [(0.0, 1.0), (30.0, 4.0), (31.0, 13.0), (1.0, 10.0)]);
    }

    #[test]
    fn area_and_perimeter_of_a_polygon() {
        let square = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)];
        assert!(close(polygon_area(&square), 4.0));
        assert!(close(polygon_perimeter(&square), 8.0));
        let reversed: Vec<Point> = square.iter().rev().copied().collect();
        assert!(close(polygon_area(&reversed), 4.0));
    }

    #[test]
    fn boxes_read_top_to_bottom_and_left_to_right_within_a_line() {
        let at = |x: f64, y: f64| [(x, y), (x + 10.0, y), (x + 10.0, y + 5.0), (x, y + 5.0)];
        // Line one: two boxes whose tops differ by 4 pixels, the right one higher; line
        // two below.
        let boxes = [at(0.0, 50.0), at(40.0, 10.0), at(0.0, 14.0), at(20.0, 52.0)];
        assert_eq!(reading_order(&boxes, 10.0), vec![2, 1, 0, 3]);
        // Tops 10 or more apart are separate lines, whatever x says.
        let boxes = [at(40.0, 0.0), at(0.0, 10.0)];
        assert_eq!(reading_order(&boxes, 10.0), vec![0, 1]);
        assert!(reading_order(&[], 10.0).is_empty());
    }

    #[test]
    fn the_round_offset_hugs_the_grown_rectangle() {
        // An axis-aligned box: every offset point lies on the rounded rectangle, its
        // minimum rectangle is the box grown by the distance (to the pixel).
        let quad = [(10.0, 20.0), (110.0, 20.0), (110.0, 50.0), (10.0, 50.0)];
        let d = unclip_distance(&quad, 1.6);
        let grown = offset_round(&quad, d);
        assert!(grown.len() > 8, "round joins add arc points: {grown:?}");
        let r = min_area_rect(&grown).unwrap();
        assert!(
            (r.width.max(r.height) - (100.0 + 2.0 * d)).abs() <= 1.0,
            "{r:?} d={d}"
        );
        assert!(
            (r.width.min(r.height) - (30.0 + 2.0 * d)).abs() <= 1.0,
            "{r:?} d={d}"
        );
        for p in &grown {
            // Integer points, never inside the box.
            assert_eq!((p.0.fract(), p.1.fract()), (0.0, 0.0));
            assert!(
                p.0 <= 10.0 || p.0 >= 110.0 || p.1 <= 20.0 || p.1 >= 50.0,
                "{p:?}"
            );
        }
        // Either orientation gives the same shape; fractions are truncated first.
        let mut reversed = quad;
        reversed.reverse();
        let a = min_area_rect(&offset_round(&reversed, d)).unwrap();
        assert!((a.width * a.height - r.width * r.height).abs() < 1e-6);
        let shifted = quad.map(|p| (p.0 + 0.7, p.1 + 0.2));
        assert_eq!(offset_round(&shifted, d), grown);
    }
}
