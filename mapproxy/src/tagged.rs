//! Tagged sources: `sources: ['wms_src:lyr1,lyr2']` in layers and caches, MapProxy's
//! `SourcesCollection` (config/configuration/source.py:22-75): the named WMS source with its
//! `req.layers` replaced by the tag's layers (its feature info and legends too, which MapProxy
//! builds from the same copied `req`).
//!
//! [`expand`] adds every tagged reference of the configuration to `sources:` under its full
//! name (`wms_src:lyr1,lyr2`), so the app compiles it as any other source.

use mapproxy_serve_core::error::{ConfigError, Location};

use crate::config::{LayerConf, MapProxyConf, SourceConf, SourceKind};

/// A tagged reference that cannot be resolved, and the cache that names it (`None`: a layer).
pub(crate) struct TagError {
    pub cache: Option<String>,
    pub reference: String,
    pub error: ConfigError,
}

/// Put the tag errors first in `errors`, without the errors that followed from them (a
/// reference to a source that could not be made is not found again).
pub(crate) fn report(tags: Vec<TagError>, errors: &mut Vec<ConfigError>) {
    if tags.is_empty() {
        return;
    }
    errors.retain(|e| {
        !tags
            .iter()
            .any(|t| e.message.contains(&format!("'{}'", t.reference)))
    });
    let rest = std::mem::take(errors);
    errors.extend(tags.into_iter().map(|t| t.error));
    errors.extend(rest);
}

/// `conf` with a source for every tagged reference of its caches and layers; the references
/// MapProxy refuses, as errors (their sources are not added).
pub(crate) fn expand(conf: &MapProxyConf) -> (MapProxyConf, Vec<TagError>) {
    let mut refs: Vec<(String, Location, Option<String>)> = Vec::new();
    for (name, c) in &conf.caches {
        for s in &c.sources {
            refs.push((s.clone(), c.loc.clone(), Some(name.clone())));
        }
    }
    fn layers(
        ls: &[LayerConf],
        conf: &MapProxyConf,
        out: &mut Vec<(String, Location, Option<String>)>,
    ) {
        for l in ls {
            for s in &l.sources {
                // a cache of that name wins (config/configuration/layer.py:62)
                if !conf.caches.contains_key(s) {
                    out.push((s.clone(), l.loc.clone(), None));
                }
            }
            layers(&l.layers, conf, out);
        }
    }
    layers(&conf.layers, conf, &mut refs);
    let mut out = conf.clone();
    let mut errors = Vec::new();
    for (reference, loc, cache) in refs {
        if out.sources.contains_key(&reference) {
            continue;
        }
        match tagged_source(conf, &reference, &loc) {
            Ok(Some(sc)) => {
                out.sources.insert(reference, sc);
            }
            Ok(None) => {}
            Err(error) => errors.push(TagError {
                cache,
                reference,
                error,
            }),
        }
    }
    (out, errors)
}

/// The source `reference` names with a tag (`name:lyr1,lyr2`), as `SourcesCollection.__getitem__`;
/// `None` for an untagged reference, an empty tag (`name:`, the source itself there) or an
/// unknown source (reported by the reference checks).
fn tagged_source(
    conf: &MapProxyConf,
    reference: &str,
    loc: &Location,
) -> Result<Option<SourceConf>, ConfigError> {
    let Some((name, tag)) = reference.split_once(':') else {
        return Ok(None);
    };
    let Some(sc) = conf.sources.get(name) else {
        return Ok(None);
    };
    if tag.is_empty() {
        // `if not layers: return source` (source.py:36)
        return Ok(Some(sc.clone()));
    }
    let wms = match &sc.kind {
        SourceKind::Wms(w) if w.arcgis.is_none() => Some(w),
        _ => None,
    };
    let Some(w) = wms else {
        if let SourceKind::Other { type_name, .. } = &sc.kind {
            if type_name == "mapserver" || type_name == "mapnik" {
                // refused where the app reports the source type itself
                return Ok(None);
            }
        }
        // source.py:39-41
        return Err(loc.error(format!(
            "found ':' in: '{reference}'. tagged sources only supported for WMS/Mapserver/Mapnik"
        )));
    };
    // source.py:49-57: the tag's layers must be among `req.layers` when that is set
    if let Some(supported) = &w.layers {
        let mut set: Vec<&str> = Vec::new();
        for l in supported.split(',') {
            if !set.contains(&l) {
                set.push(l);
            }
        }
        if !tag.split(',').all(|l| set.contains(&l)) {
            return Err(loc.error(format!(
                "layers ({tag}) not supported by source ({})",
                set.join(",")
            )));
        }
    }
    let mut w = w.clone();
    w.layers = Some(tag.to_string());
    Ok(Some(SourceConf {
        kind: SourceKind::Wms(w),
        loc: sc.loc.clone(),
    }))
}
