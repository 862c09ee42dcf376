//! Each model's look on every chart: a colour of its own, a marker shape, and a dash style
//! by family (solid: blocking code, dashed: event loops, dotted: async runtimes). The look
//! depends only on the model's place in the registry, so a model keeps it across charts and
//! runs.

use echo_servers::{Family, Model};

use echo_analysis::server::Server;
use plotters::style::RGBColor;

/// Seventeen colours, one per model, chosen to stay apart from each other on white (Tableau
/// 10, its light grey and yellow replaced by darker ones, plus black and cyan, then five for
/// the models added later, so the first twelve keep their colours in stored runs).
const PALETTE: [RGBColor; 17] = [
    RGBColor(78, 121, 167),  // blue
    RGBColor(242, 142, 43),  // orange
    RGBColor(225, 87, 89),   // red
    RGBColor(118, 183, 178), // teal
    RGBColor(89, 161, 79),   // green
    RGBColor(184, 134, 11),  // dark gold
    RGBColor(176, 122, 161), // purple
    RGBColor(255, 107, 157), // pink
    RGBColor(156, 117, 95),  // brown
    RGBColor(85, 85, 85),    // dark grey
    RGBColor(0, 0, 0),       // black
    RGBColor(23, 190, 207),  // cyan
    RGBColor(0, 128, 128),   // dark teal
    RGBColor(128, 128, 0),   // olive
    RGBColor(170, 40, 200),  // violet
    RGBColor(255, 187, 120), // peach
    RGBColor(0, 180, 100),   // emerald
];

/// Colours of outside servers, apart from the models' (dark, saturated).
const OUTSIDE_PALETTE: [RGBColor; 4] = [
    RGBColor(128, 0, 128), // plum
    RGBColor(0, 100, 0),   // forest green
    RGBColor(139, 0, 0),   // dark red
    RGBColor(0, 0, 139),   // navy
];

/// Colours of the io_uring ablation's steps (the model variants), from light to dark: each
/// step adds a technique to the one before; the last step is the `io-uring` model, drawn in
/// its own colour.
const STEP_PALETTE: [RGBColor; 5] = [
    RGBColor(253, 174, 97), // light orange
    RGBColor(244, 109, 67), // orange-red
    RGBColor(215, 48, 39),  // red
    RGBColor(165, 0, 38),   // dark red
    RGBColor(103, 0, 13),   // maroon
];

/// A marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// ●
    Circle,
    /// ■
    Square,
    /// ▲
    Triangle,
    /// ◆
    Diamond,
    /// ▼
    TriangleDown,
}

const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Square,
    Shape::Triangle,
    Shape::Diamond,
    Shape::TriangleDown,
];

/// A line's dash pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dash {
    /// ───
    Solid,
    /// - - -
    Dashed,
    /// · · ·
    Dotted,
}

/// How one series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesStyle {
    /// Line and marker colour.
    pub color: RGBColor,
    /// Marker shape.
    pub shape: Shape,
    /// Line dash pattern.
    pub dash: Dash,
}

impl SeriesStyle {
    /// The look of a registered model.
    pub fn of_model(model: Model) -> Self {
        let index = Model::ALL.iter().position(|&m| m == model).unwrap_or(0);
        let dash = match model.family() {
            Family::Threads => Dash::Solid,
            Family::EventLoop => Dash::Dashed,
            Family::AsyncRuntime => Dash::Dotted,
        };
        Self {
            color: PALETTE[index % PALETTE.len()],
            shape: SHAPES[index % SHAPES.len()],
            dash,
        }
    }

    /// The look of a model or an outside server: outside servers take colours of their own,
    /// darker than the models', solid lines, and the shapes in turn.
    pub fn of(server: Server) -> Self {
        match server {
            Server::Model(model) => Self::of_model(model),
            Server::Variant(i) => {
                let i = usize::from(i);
                Self {
                    color: STEP_PALETTE[i % STEP_PALETTE.len()],
                    shape: SHAPES[i % SHAPES.len()],
                    dash: Dash::Dashed,
                }
            }
            Server::Outside(_) => {
                // By its name, so a server keeps its colour whatever else a run measured.
                let i = server.name().bytes().fold(0usize, |h, b| {
                    h.wrapping_mul(31).wrapping_add(usize::from(b))
                });
                Self {
                    color: OUTSIDE_PALETTE[i % OUTSIDE_PALETTE.len()],
                    shape: SHAPES[i % SHAPES.len()],
                    dash: Dash::Solid,
                }
            }
        }
    }

    /// The `n`th style of a chart whose series are not servers (a history's trend lines).
    pub fn nth(n: usize) -> Self {
        Self {
            color: PALETTE[n % PALETTE.len()],
            shape: SHAPES[n % SHAPES.len()],
            dash: [Dash::Solid, Dash::Dashed, Dash::Dotted][n / PALETTE.len() % 3],
        }
    }

    /// The `#rrggbb` form of the colour, as the SVG files spell it.
    #[cfg(test)]
    pub fn hex(&self) -> String {
        let RGBColor(r, g, b) = self.color;
        format!("#{r:02X}{g:02X}{b:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Colours differ by at least this much (sum of channel differences) to be told apart.
    const DISTINCT: i32 = 60;

    #[test]
    fn every_model_has_a_colour_of_its_own_and_a_distinct_style() {
        let styles: Vec<SeriesStyle> = Model::ALL
            .iter()
            .map(|&m| SeriesStyle::of_model(m))
            .collect();
        for (i, a) in styles.iter().enumerate() {
            for (j, b) in styles.iter().enumerate().skip(i + 1) {
                let (RGBColor(r1, g1, b1), RGBColor(r2, g2, b2)) = (a.color, b.color);
                let distance = (i32::from(r1) - i32::from(r2)).abs()
                    + (i32::from(g1) - i32::from(g2)).abs()
                    + (i32::from(b1) - i32::from(b2)).abs();
                assert!(
                    distance >= DISTINCT,
                    "{} and {} have colours too close to tell apart",
                    Model::ALL[i],
                    Model::ALL[j]
                );
                assert!(
                    (a.shape, a.dash) != (b.shape, b.dash) || a.color != b.color,
                    "{} and {} look the same",
                    Model::ALL[i],
                    Model::ALL[j]
                );
            }
        }
    }

    #[test]
    fn a_model_keeps_its_look() {
        assert_eq!(
            SeriesStyle::of_model(Model::Tokio),
            SeriesStyle::of_model(Model::Tokio)
        );
        assert_eq!(SeriesStyle::of_model(Model::Mio).dash, Dash::Dashed);
        assert_eq!(SeriesStyle::of_model(Model::Blocking).dash, Dash::Solid);
    }
}
