//! MapProxy's authorization callback (`environ['mapproxy.authorize']`, `doc/auth.rst`), Rust
//! style: a filter in front of the app puts an [`Authorizer`] into the request extensions; the
//! services ask it once they know what the request is for, and honour its [`Authorized`]
//! answer as MapProxy 7 does. No authorizer in the request: everything is allowed.
//!
//! | service | asked with | `full` | `partial` | `none` | `unauthenticated` |
//! |---|---|---|---|---|---|
//! | `tms` capabilities (`/tms/1.0.0/`) | every layer name | all layers | the layers with `tile` | 403 | 401 |
//! | `tms` layer capabilities, tiles (`/tms`, `/tiles`) | the layer | served | served if `tile` | 403 | 401 |
//! | `kml` documents and tiles | the layer | served | served if `tile` | 403 | 401 |
//! | `wmts` capabilities (REST and KVP) | every layer name | all layers | the layers with `tile` | 403 | 401 |
//! | `wmts` tiles (REST and KVP) | the layer | served | served if `tile` | 403 | 401 |
//! | `demo` (not its static files) | every tile layer name | all layers | the layers with `tile` (MapProxy: 403) | 403 | 401 |
//! | `wms.map` | the layers to render (groups resolved) | all | the layers with `map` (a requested one without: 403), each clipped to its `limited_to`, all to the answer's | 403 | 401 |
//! | `wms.featureinfo` | the layers to query | all | the layers with `featureinfo`, only where the point is inside the `limited_to`s | 403 | 401 |
//! | `wms.capabilities` | every layer name | all | the layers with `map`, bboxes limited to the `limited_to`s | 403 | 401 |
//! | `wms.legendgraphic` | the layer | served | served if `legendgraphic` | 403 | 401 |
//!
//! The denials are MapProxy's bodies: `forbidden` (403) and `unauthorized` (401), `text/plain`
//! with the no-cache headers (the demo's 403 without them, as MapProxy).
//!
//! Tile requests are asked with the tile's extent ([`AuthRequest::query_extent`], MapProxy's
//! `query_extent`); a tile outside the grid is answered `TileOutOfRange` before the
//! authorizer is asked, and a wrong format after it, in MapProxy's order.
//!
//! WMS requests are asked with the request's extent. `limited_to` ([`LimitedTo`]: a bbox,
//! WKT or GeoJSON polygons in an SRS) is the WMS's.
//!
//! Differences from MapProxy 7, on purpose:
//! - `limited_to` is not applied by the tile services (TMS, WMTS, KML: MapProxy clips
//!   tiles); an authorizer's tile answers are whole layers;
//! - `wms.legendgraphic` is asked (MapProxy serves legends without asking);
//! - TMS capabilities pass the layer names (MapProxy passes its internal keys, such as
//!   `osm_EPSG900913`, and reads the answer by layer name), and list every allowed
//!   layer in every grid (MapProxy's `partial` keeps only the last grid of a layer);
//! - the demo honours `partial` by listing the allowed tile layers only, and asks with the
//!   tile layers' names (MapProxy asks with no layers and answers `partial` 403).

use std::collections::HashMap;
use std::sync::Arc;

use http::{Request, StatusCode};
use mapproxy_serve_core::environ::path_info;

use crate::grid::Bbox;
use crate::multiapp::InstanceName;

/// MapProxy's `authorized` values and what goes with them.
#[derive(Debug, Clone, PartialEq)]
pub enum Authorized {
    /// `full`: as if there were no authorization.
    Full,
    /// `partial`: only what [`Partial`] allows; any layer it does not name is denied.
    Partial(Partial),
    /// `none`: 403.
    None,
    /// `unauthenticated`: 401 (a filter in front may turn it into a login challenge).
    Unauthenticated,
}

/// The `layers` of a `partial` answer.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Partial {
    /// By layer name; a missing layer is a denied one.
    pub layers: HashMap<String, LayerAccess>,
    /// `limited_to` of the whole request (WMS): output outside is transparent (or the
    /// request's `BGCOLOR`), feature info outside is empty.
    pub limited_to: Option<LimitedTo>,
}

/// MapProxy's `limited_to`: a geometry (polygons) and the SRS of its coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitedTo {
    /// `EPSG:4326` and the like.
    pub srs: String,
    pub geometry: geo::MultiPolygon<f64>,
}

impl LimitedTo {
    /// A bbox `[minx, miny, maxx, maxy]` (MapProxy's list geometry).
    pub fn bbox(srs: impl Into<String>, b: Bbox) -> LimitedTo {
        let rect = geo::Rect::new(
            geo::coord! { x: b[0], y: b[1] },
            geo::coord! { x: b[2], y: b[3] },
        );
        LimitedTo {
            srs: srs.into(),
            geometry: geo::MultiPolygon(vec![rect.to_polygon()]),
        }
    }

    /// One or more `POLYGON`/`MULTIPOLYGON` WKTs, one per line (MapProxy's string geometry).
    pub fn wkt(srs: impl Into<String>, text: &str) -> Result<LimitedTo, String> {
        Ok(LimitedTo {
            srs: srs.into(),
            geometry: geo::MultiPolygon(crate::coverage::polygons_from_wkt(text)?),
        })
    }

    /// A GeoJSON geometry, feature or feature collection of polygons.
    pub fn geojson(srs: impl Into<String>, text: &str) -> Result<LimitedTo, String> {
        Ok(LimitedTo {
            srs: srs.into(),
            geometry: geo::MultiPolygon(crate::coverage::polygons_from_geojson(text)?),
        })
    }

    /// Is `p` (in `srs`) inside (not on the boundary, as shapely's `contains`)?
    pub fn contains_point(&self, srs: &crate::srs::Srs, p: (f64, f64)) -> bool {
        use geo::Contains;
        let Ok(own) = crate::srs::Srs::get(&self.srs) else {
            return false;
        };
        let (x, y) = srs.transform_to(&own, p);
        self.geometry.contains(&geo::Point::new(x, y))
    }

    /// The geometry's coordinates transformed into `srs` (vertex by vertex, as MapProxy
    /// transforms a coverage); `None` when the SRS is unknown.
    pub fn in_srs(&self, srs: &crate::srs::Srs) -> Option<geo::MultiPolygon<f64>> {
        use geo::MapCoords;
        let own = crate::srs::Srs::get(&self.srs).ok()?;
        if *own == *srs {
            return Some(self.geometry.clone());
        }
        Some(self.geometry.map_coords(|c| {
            let (x, y) = own.transform_to(srs, (c.x, c.y));
            geo::coord! { x: x, y: y }
        }))
    }
}

impl Partial {
    /// Nothing allowed yet.
    pub fn new() -> Partial {
        Partial::default()
    }

    /// `layers` with `tile: true` each.
    pub fn tiles<I, S>(layers: I) -> Partial
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut p = Partial::new();
        for l in layers {
            p.layers.insert(l.into(), LayerAccess::tile());
        }
        p
    }

    /// This answer with `layer` granted `access`.
    pub fn layer(mut self, layer: impl Into<String>, access: LayerAccess) -> Partial {
        self.layers.insert(layer.into(), access);
        self
    }

    /// This answer limited to `geometry` as a whole.
    pub fn limited_to(mut self, geometry: LimitedTo) -> Partial {
        self.limited_to = Some(geometry);
        self
    }

    /// What `layer` may do (nothing when not named).
    pub fn access(&self, layer: &str) -> LayerAccess {
        self.layers.get(layer).cloned().unwrap_or_default()
    }
}

/// One layer's features in a `partial` answer; a feature left `false` is denied. The tile
/// services read `tile`; `map`, `featureinfo`, `legendgraphic` are the WMS's, which honours
/// `limited_to` too.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LayerAccess {
    pub tile: bool,
    pub map: bool,
    pub featureinfo: bool,
    pub legendgraphic: bool,
    /// `limited_to` of the layer (WMS `map`, `featureinfo`, `capabilities`).
    pub limited_to: Option<LimitedTo>,
}

impl LayerAccess {
    /// `{tile: true}`.
    pub fn tile() -> LayerAccess {
        LayerAccess {
            tile: true,
            ..LayerAccess::default()
        }
    }

    /// Every feature.
    pub fn all() -> LayerAccess {
        LayerAccess {
            tile: true,
            map: true,
            featureinfo: true,
            legendgraphic: true,
            limited_to: None,
        }
    }

    /// This access limited to `geometry`.
    pub fn limited_to(mut self, geometry: LimitedTo) -> LayerAccess {
        self.limited_to = Some(geometry);
        self
    }
}

/// MapProxy's `query_extent`: the SRS (`EPSG:900913`) and the bbox of the requested tile.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryExtent {
    pub srs: String,
    pub bbox: Bbox,
}

/// What an authorizer is asked: MapProxy's `authorize(service, layers, environ=...,
/// query_extent=...)`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AuthRequest<'a> {
    /// `tms`, `kml`, `wmts` or `demo`.
    pub service: &'a str,
    /// The layer names the request is for: one for a tile or a layer's document, every layer
    /// for capabilities.
    pub layers: &'a [&'a str],
    /// The tile's extent for tile requests, `None` otherwise.
    pub query_extent: Option<&'a QueryExtent>,
    /// The request as the app sees it (headers; extensions such as
    /// [`RemoteUser`](mapproxy_serve_core::environ::RemoteUser)). No body.
    pub request: &'a Request<()>,
}

impl<'a> AuthRequest<'a> {
    /// A question about `request` (for tests of an authorizer, too).
    pub fn new(
        service: &'a str,
        layers: &'a [&'a str],
        request: &'a Request<()>,
    ) -> AuthRequest<'a> {
        AuthRequest {
            service,
            layers,
            query_extent: None,
            request,
        }
    }

    /// With the tile's extent.
    pub fn with_query_extent(mut self, extent: &'a QueryExtent) -> AuthRequest<'a> {
        self.query_extent = Some(extent);
        self
    }

    /// `PATH_INFO`: the path below the app's mount (below the project in MultiMapProxy),
    /// still percent-encoded.
    pub fn path_info(&self) -> &'a str {
        path_info(self.request)
    }

    /// `QUERY_STRING`, raw.
    pub fn query(&self) -> &'a str {
        self.request.uri().query().unwrap_or("")
    }

    /// `mapproxy.instance_name`: the MultiMapProxy project, when the app is one.
    pub fn instance(&self) -> Option<&'a str> {
        self.request
            .extensions()
            .get::<InstanceName>()
            .map(|n| n.0.as_str())
    }

    /// `REMOTE_USER`, when a filter in front authenticated the request.
    pub fn remote_user(&self) -> Option<&'a str> {
        self.request
            .extensions()
            .get::<mapproxy_serve_core::environ::RemoteUser>()
            .map(|u| u.0.as_str())
    }
}

/// The callback. Called on the request's task, so it must not block: look up what a user
/// may do (a database, a file) in the filter before the app, then put an authorizer holding
/// the answer into the request.
pub trait Authorize: Send + Sync + 'static {
    fn authorize(&self, req: &AuthRequest<'_>) -> Authorized;
}

impl<F> Authorize for F
where
    F: Fn(&AuthRequest<'_>) -> Authorized + Send + Sync + 'static,
{
    fn authorize(&self, req: &AuthRequest<'_>) -> Authorized {
        self(req)
    }
}

/// The request extension the services look for (MapProxy's `mapproxy.authorize` key).
#[derive(Clone)]
pub struct Authorizer(pub Arc<dyn Authorize>);

impl Authorizer {
    pub fn new(a: impl Authorize) -> Authorizer {
        Authorizer(Arc::new(a))
    }

    pub fn authorize(&self, req: &AuthRequest<'_>) -> Authorized {
        self.0.authorize(req)
    }
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

/// A denial: MapProxy's `RequestError('forbidden', status=403)` or `('unauthorized', 401)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Denied(pub StatusCode);

impl Denied {
    pub fn message(self) -> &'static str {
        if self.0 == StatusCode::UNAUTHORIZED {
            "unauthorized"
        } else {
            "forbidden"
        }
    }
}

/// `authorize_tile_layer` (without `limited_to`): may the request use `layer`?
pub(crate) fn check_layer(answer: &Authorized, layer: &str) -> Result<(), Denied> {
    match answer {
        Authorized::Full => Ok(()),
        Authorized::Unauthenticated => Err(Denied(StatusCode::UNAUTHORIZED)),
        Authorized::Partial(p) if p.access(layer).tile => Ok(()),
        Authorized::Partial(_) | Authorized::None => Err(Denied(StatusCode::FORBIDDEN)),
    }
}

/// Which layers a listing shows.
pub(crate) enum Listing {
    All,
    Only(Partial),
}

impl Listing {
    pub fn allows(&self, layer: &str) -> bool {
        match self {
            Listing::All => true,
            Listing::Only(p) => p.access(layer).tile,
        }
    }
}

/// `authorized_tile_layers`: the layers a capabilities document lists.
pub(crate) fn listing(answer: Authorized) -> Result<Listing, Denied> {
    match answer {
        Authorized::Full => Ok(Listing::All),
        Authorized::Partial(p) => Ok(Listing::Only(p)),
        Authorized::None => Err(Denied(StatusCode::FORBIDDEN)),
        Authorized::Unauthenticated => Err(Denied(StatusCode::UNAUTHORIZED)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let p = Authorized::Partial(Partial::tiles(["a"]).layer("b", LayerAccess::default()));
        assert_eq!(check_layer(&p, "a"), Ok(()));
        assert_eq!(check_layer(&p, "b"), Err(Denied(StatusCode::FORBIDDEN)));
        assert_eq!(check_layer(&p, "c"), Err(Denied(StatusCode::FORBIDDEN)));
        assert_eq!(check_layer(&Authorized::Full, "c"), Ok(()));
        assert_eq!(
            check_layer(&Authorized::Unauthenticated, "a").map_err(Denied::message),
            Err("unauthorized")
        );
        assert!(matches!(listing(Authorized::None), Err(d) if d.message() == "forbidden"));
        assert!(matches!(listing(p), Ok(l) if l.allows("a") && !l.allows("b")));
    }

    #[test]
    fn request_facts() {
        let mut req = Request::builder()
            .uri("/tms/1.0.0/?x=1")
            .body(())
            .unwrap_or_default();
        req.extensions_mut().insert(InstanceName("proj".into()));
        let layers = ["a"];
        let q = AuthRequest::new("tms", &layers, &req);
        assert_eq!(
            (q.path_info(), q.query(), q.instance()),
            ("/tms/1.0.0/", "x=1", Some("proj"))
        );
        let a = Authorizer::new(|r: &AuthRequest<'_>| {
            if r.service == "tms" {
                Authorized::Full
            } else {
                Authorized::None
            }
        });
        assert_eq!(a.authorize(&q), Authorized::Full);
    }
}
