//! `type: tile` sources (MapProxy's `source/tile.py` `TiledSource` and `client/tile.py`): one
//! tile of the source's grid per query, fetched from a URL template.

use futures_util::future::BoxFuture;

use super::error::OnError;
use super::http::SourceHttp;
use super::{MapQuery, MapSource, SourceError, SourceImage};
use crate::grid::{TileCoord, TileGrid};

/// A URL template with Python `%`-style variables, as MapProxy's `TileURLTemplate`:
///
/// | variable | value for (x, y, z) in the source grid's own origin |
/// |---|---|
/// | `%(x)s` `%(y)s` `%(z)s` | the numbers (`d`, `i`, `x`, `X` conversions, widths and `0` padding work too) |
/// | `%(format)s` | the requested format's extension (`png`, `jpeg`) |
/// | `%(tms_path)s` | `z/x/y` |
/// | `%(tc_path)s` | `%02d/%03d/%03d/%03d/%03d/%03d/%03d` of z, x and y in thousands |
/// | `%(quadkey)s` | the quadkey |
/// | `%(arcgiscache_path)s` | `L%02d/R%08x/C%08x` of z, y, x |
/// | `%(bbox)s` | the tile's bbox, `%.8f` each, comma separated |
///
/// `%%` is a `%`. Another name, or a conversion that does not fit, is an error when the
/// template is made (MapProxy fails at the first request).
#[derive(Debug, Clone, PartialEq)]
pub struct TileUrlTemplate {
    template: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Var {
        name: Var,
        zero: bool,
        left: bool,
        width: usize,
        conv: char,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Var {
    X,
    Y,
    Z,
    Format,
    TmsPath,
    TcPath,
    Quadkey,
    ArcgisPath,
    Bbox,
}

impl TileUrlTemplate {
    pub fn new(template: &str) -> Result<TileUrlTemplate, SourceError> {
        let bad =
            |why: &str| SourceError::new(format!("invalid tile URL template {template:?}: {why}"));
        use mapproxy_serve_core::pyformat::{self, FormatError, Piece};
        let pieces = pyformat::parse(template).map_err(|e| match e {
            FormatError::NoName { .. } => bad("a % without (name)"),
            FormatError::Unclosed { .. } => bad("unclosed %("),
            FormatError::Width { .. } => bad("width too large"),
            FormatError::NoConversion { .. } => bad("no conversion after %(name)"),
        })?;
        let mut parts = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let f = match piece {
                Piece::Lit(l) => {
                    parts.push(Part::Lit(l));
                    continue;
                }
                Piece::Field(f) => f,
            };
            let name = match f.name {
                "x" => Var::X,
                "y" => Var::Y,
                "z" => Var::Z,
                "format" => Var::Format,
                "tms_path" => Var::TmsPath,
                "tc_path" => Var::TcPath,
                "quadkey" => Var::Quadkey,
                "arcgiscache_path" => Var::ArcgisPath,
                "bbox" => Var::Bbox,
                other => return Err(bad(&format!("unknown variable {other:?}"))),
            };
            let numeric = matches!(name, Var::X | Var::Y | Var::Z);
            match f.conv {
                's' => {}
                'd' | 'i' | 'x' | 'X' if numeric => {}
                conv => return Err(bad(&format!("conversion %{conv} for %({})", f.name))),
            }
            parts.push(Part::Var {
                name,
                zero: f.zero,
                left: f.left,
                width: f.width,
                conv: f.conv,
            });
        }
        Ok(TileUrlTemplate {
            template: template.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The URL of a tile (`format`: the extension; `grid`: for `%(bbox)s`).
    pub fn substitute(
        &self,
        (x, y, z): TileCoord,
        format: &str,
        grid: &TileGrid,
    ) -> Result<String, SourceError> {
        let mut out = String::new();
        for part in &self.parts {
            let (name, zero, left, width, conv) = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var {
                    name,
                    zero,
                    left,
                    width,
                    conv,
                } => (*name, *zero, *left, *width, *conv),
            };
            let num = match name {
                Var::X => Some(x),
                Var::Y => Some(y),
                Var::Z => Some(z as i64),
                _ => None,
            };
            let text = match (num, conv) {
                (Some(n), 'x') => format!("{n:x}"),
                (Some(n), 'X') => format!("{n:X}"),
                (Some(n), _) => n.to_string(),
                (None, _) => match name {
                    Var::Format => format.to_owned(),
                    Var::TmsPath => format!("{z}/{x}/{y}"),
                    Var::TcPath => tc_path((x, y, z)),
                    Var::Quadkey => crate::cache::path::quadkey((x, y, z)),
                    Var::ArcgisPath => format!("L{z:02}/R{y:08x}/C{x:08x}"),
                    Var::Bbox => {
                        let b = grid
                            .tile_bbox((x, y, z), false)
                            .map_err(|e| SourceError::new(e.to_string()))?;
                        format!("{:.8},{:.8},{:.8},{:.8}", b[0], b[1], b[2], b[3])
                    }
                    Var::X | Var::Y | Var::Z => String::new(),
                },
            };
            let pad = width.saturating_sub(text.chars().count());
            if left {
                out.push_str(&text);
                out.extend(std::iter::repeat_n(' ', pad));
            } else if zero && num.is_some() && conv != 's' {
                let (sign, digits) = match text.strip_prefix('-') {
                    Some(d) => ("-", d),
                    None => ("", text.as_str()),
                };
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(digits);
            } else {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&text);
            }
        }
        Ok(out)
    }
}

/// `%02d/%03d/%03d/%03d/%03d/%03d/%03d` (Python's `int(x / 1000000)` etc.).
fn tc_path((x, y, z): TileCoord) -> String {
    let p = |v: i64| {
        (
            (v as f64 / 1e6).trunc() as i64,
            ((v as f64 / 1000.0).trunc() as i64).rem_euclid(1000),
            v.rem_euclid(1000),
        )
    };
    let (x1, x2, x3) = p(x);
    let (y1, y2, y3) = p(y);
    format!("{z:02}/{x1:03}/{x2:03}/{x3:03}/{y1:03}/{y2:03}/{y3:03}")
}

/// A `type: tile` source.
pub struct TileSource {
    template: TileUrlTemplate,
    grid: TileGrid,
    http: SourceHttp,
    on_error: Option<OnError>,
    /// `min_res`/`max_res` (or the scales): no image outside ([`MapSource::blank_for`]).
    res_range: Option<crate::grid::ResRange>,
    /// `coverage`: no image for a tile that does not meet it ([`MapSource::blank_for`]; a
    /// tile source's coverage only limits, it never clips: source/tile.py:73-74).
    coverage: Option<std::sync::Arc<crate::coverage::Coverage>>,
}

impl TileSource {
    /// `url` template, the source's `grid` (MapProxy's default: `GLOBAL_MERCATOR`), its HTTP
    /// client, its `on_error`.
    pub fn new(
        template: TileUrlTemplate,
        grid: TileGrid,
        http: SourceHttp,
        on_error: Option<OnError>,
    ) -> TileSource {
        TileSource {
            template,
            grid,
            http,
            on_error,
            res_range: None,
            coverage: None,
        }
    }

    /// This source limited to `coverage` (MapProxy's `TiledSource(coverage=...)`).
    pub fn with_coverage(mut self, coverage: Option<crate::coverage::Coverage>) -> TileSource {
        self.coverage = coverage.map(std::sync::Arc::new);
        self
    }

    /// This source limited to `range` (MapProxy's source `min_res`/`max_res`).
    pub fn with_res_range(mut self, range: Option<crate::grid::ResRange>) -> TileSource {
        self.res_range = range;
        self
    }

    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    /// The one tile of the grid that `query` is, else MapProxy's error.
    pub fn tile_for(&self, query: &MapQuery) -> Result<TileCoord, SourceError> {
        let ts = self.grid.tile_size();
        if ts != query.size {
            let e = format!(
                "tile size of cache and tile source do not match: ({}, {}) != ({}, {})",
                ts.0, ts.1, query.size.0, query.size.1
            );
            log::error!(target: "mapproxy.config", "{e}");
            return Err(SourceError::new(e));
        }
        if self.grid.srs() != query.srs {
            let e = format!(
                "SRS of cache and tile source do not match: SRS EPSG:{} != SRS EPSG:{}",
                self.grid.srs(),
                query.srs
            );
            log::error!(target: "mapproxy.config", "{e}");
            return Err(SourceError::new(e));
        }
        let mut affected = self
            .grid
            .get_affected_tiles(query.bbox, query.size)
            .map_err(|e| SourceError::new(e.to_string()))?;
        if affected.grid_size != (1, 1) {
            return Err(SourceError::new("BBOX does not align to tile"));
        }
        match affected.tiles.next() {
            Some(Some(c)) => Ok(c),
            _ => Err(SourceError::new("BBOX does not align to tile")),
        }
    }

    /// The URL of a tile for a query in `format` (an extension).
    pub fn url(&self, coord: TileCoord, format: &str) -> Result<String, SourceError> {
        self.template.substitute(coord, format, &self.grid)
    }
}

impl MapSource for TileSource {
    fn blank_for(&self, query: &MapQuery) -> bool {
        if super::outside_res_range(self.res_range.as_ref(), query) {
            return true;
        }
        // `if self.coverage and not self.coverage.intersects(query.bbox, query.srs)`
        self.coverage.as_ref().is_some_and(|c| {
            crate::srs::Srs::get(&format!("EPSG:{}", query.srs))
                .is_ok_and(|srs| !c.intersects(query.bbox, &srs))
        })
    }

    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        Box::pin(async move {
            let coord = self.tile_for(query)?;
            let url = self.url(coord, query.format.ext())?;
            match self.http.open_image(&url).await {
                Ok(img) => Ok(img),
                Err(e) => {
                    if let Some(r) = self
                        .on_error
                        .as_ref()
                        .and_then(|h| h.handle(e.status, query.size))
                    {
                        return r;
                    }
                    log::warn!(
                        target: "mapproxy.source.tile",
                        "could not retrieve tile (client: TileClient({:?})): {}",
                        self.template.as_str(),
                        e.full_msg
                    );
                    Err(e.into())
                }
            }
        })
    }
}
