// The world map: an equirectangular SVG (x = longitude, y = -latitude, in degrees) with
// zoom (wheel, +/- buttons) and pan (drag). Markers keep a constant size on screen, so their
// radius is recomputed from the current scale whenever the view changes.

const SVG_NS = "http://www.w3.org/2000/svg";
const WORLD = { x: -180, y: -90, w: 360, h: 180 };
const MIN_VIEW_WIDTH_DEG = 0.5;
const MARKER_RADIUS_PX = { chip: 6, landmark: 4.5 };

function el(name, attrs = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

function ringPath(ring) {
  return "M" + ring.map(([lon, lat]) => `${lon},${-lat}`).join("L") + "Z";
}

// One SVG path string for a GeoJSON geometry (Polygon, MultiPolygon or a GeometryCollection
// of them); other geometry types draw nothing.
export function geometryPath(geometry) {
  if (!geometry) return "";
  switch (geometry.type) {
    case "Polygon":
      return geometry.coordinates.map(ringPath).join("");
    case "MultiPolygon":
      return geometry.coordinates.map((polygon) => polygon.map(ringPath).join("")).join("");
    case "GeometryCollection":
      return geometry.geometries.map(geometryPath).join("");
    case "Feature":
      return geometryPath(geometry.geometry);
    case "FeatureCollection":
      return geometry.features.map(geometryPath).join("");
    default:
      return "";
  }
}

function extendBounds(bounds, geometry) {
  const visit = (coords) => {
    if (typeof coords[0] === "number") {
      bounds.minLon = Math.min(bounds.minLon, coords[0]);
      bounds.maxLon = Math.max(bounds.maxLon, coords[0]);
      bounds.minLat = Math.min(bounds.minLat, coords[1]);
      bounds.maxLat = Math.max(bounds.maxLat, coords[1]);
    } else {
      coords.forEach(visit);
    }
  };
  if (!geometry) return;
  if (geometry.type === "GeometryCollection") geometry.geometries.forEach((g) => extendBounds(bounds, g));
  else if (geometry.type === "Feature") extendBounds(bounds, geometry.geometry);
  else if (geometry.type === "FeatureCollection") geometry.features.forEach((f) => extendBounds(bounds, f));
  else if (geometry.coordinates) visit(geometry.coordinates);
}

export class WorldMap {
  constructor(svg, { onChipClick } = {}) {
    this.svg = svg;
    this.onChipClick = onChipClick ?? (() => {});
    this.view = { ...WORLD };
    this.layers = {};
    for (const name of ["ocean", "countries", "licence", "regions", "landmarks", "chips"]) {
      this.layers[name] = el("g", { class: `layer layer-${name}` });
      svg.appendChild(this.layers[name]);
    }
    this.layers.ocean.appendChild(el("rect", { class: "ocean", ...WORLD, width: WORLD.w, height: WORLD.h }));
    this.countryPaths = new Map();
    this.bindInteraction();
    new ResizeObserver(() => this.applyView()).observe(svg);
    this.applyView();
  }

  bindInteraction() {
    this.svg.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        this.zoomAt(event.deltaY < 0 ? 1.25 : 0.8, this.toMap(event.clientX, event.clientY));
      },
      { passive: false },
    );
    let drag = null;
    this.svg.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || event.target.closest(".chip-marker")) return;
      drag = { x: event.clientX, y: event.clientY, view: { ...this.view } };
      this.svg.setPointerCapture(event.pointerId);
      this.svg.classList.add("dragging");
    });
    this.svg.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const perPx = this.degreesPerPixel();
      this.view.x = drag.view.x - (event.clientX - drag.x) * perPx;
      this.view.y = drag.view.y - (event.clientY - drag.y) * perPx;
      this.applyView();
    });
    const end = () => {
      drag = null;
      this.svg.classList.remove("dragging");
    };
    this.svg.addEventListener("pointerup", end);
    this.svg.addEventListener("pointercancel", end);
  }

  // With preserveAspectRatio "xMidYMid meet" the scale is set by the tighter axis.
  degreesPerPixel() {
    const rect = this.svg.getBoundingClientRect();
    if (!rect.width || !rect.height) return 1;
    return Math.max(this.view.w / rect.width, this.view.h / rect.height);
  }

  toMap(clientX, clientY) {
    const rect = this.svg.getBoundingClientRect();
    const perPx = this.degreesPerPixel();
    const cx = this.view.x + this.view.w / 2;
    const cy = this.view.y + this.view.h / 2;
    return {
      x: cx + (clientX - (rect.left + rect.width / 2)) * perPx,
      y: cy + (clientY - (rect.top + rect.height / 2)) * perPx,
    };
  }

  zoomAt(factor, point) {
    const w = Math.min(WORLD.w * 2, Math.max(MIN_VIEW_WIDTH_DEG, this.view.w / factor));
    const actual = this.view.w / w;
    const h = this.view.h / actual;
    this.view = {
      x: point.x - (point.x - this.view.x) / actual,
      y: point.y - (point.y - this.view.y) / actual,
      w,
      h,
    };
    this.applyView();
  }

  zoomBy(factor) {
    this.zoomAt(factor, { x: this.view.x + this.view.w / 2, y: this.view.y + this.view.h / 2 });
  }

  reset() {
    this.view = { ...WORLD };
    this.applyView();
  }

  fitGeometries(geometries, paddingFraction = 0.25) {
    const bounds = { minLon: Infinity, maxLon: -Infinity, minLat: Infinity, maxLat: -Infinity };
    geometries.forEach((g) => extendBounds(bounds, g));
    if (!Number.isFinite(bounds.minLon)) return;
    const w = Math.max(bounds.maxLon - bounds.minLon, 2);
    const h = Math.max(bounds.maxLat - bounds.minLat, 1);
    const cx = (bounds.minLon + bounds.maxLon) / 2;
    const cy = -(bounds.minLat + bounds.maxLat) / 2;
    const scale = 1 + 2 * paddingFraction;
    this.view = { x: cx - (w * scale) / 2, y: cy - (h * scale) / 2, w: w * scale, h: h * scale };
    this.applyView();
  }

  applyView() {
    const { x, y, w, h } = this.view;
    this.svg.setAttribute("viewBox", `${x} ${y} ${w} ${h}`);
    const perPx = this.degreesPerPixel();
    for (const marker of this.svg.querySelectorAll("[data-marker]")) {
      marker.setAttribute("r", String(MARKER_RADIUS_PX[marker.dataset.marker] * perPx));
    }
  }

  setCountries(featureCollection) {
    this.layers.countries.replaceChildren();
    this.countryPaths.clear();
    for (const feature of featureCollection.features) {
      const iso3 = feature.properties.iso3;
      const path = el("path", { class: "country", d: geometryPath(feature.geometry), "data-iso3": iso3 });
      path.appendChild(el("title")).textContent = iso3;
      this.layers.countries.appendChild(path);
      this.countryPaths.set(iso3, path);
    }
  }

  countryGeometry(iso3) {
    const path = this.countryPaths.get(iso3);
    return path ? path.getAttribute("d") : null;
  }

  // Licensed areas: allowed shaded green, prohibited hatched red. Each entry is an ISO3 code
  // (drawn from the country outline) or a GeoJSON geometry (a custom region).
  setLicence(allowed, prohibited) {
    this.layers.licence.replaceChildren();
    const draw = (entries, kind) => {
      for (const entry of entries) {
        const d = typeof entry === "string" ? this.countryGeometry(entry) : geometryPath(entry);
        if (!d) continue;
        const path = el("path", { class: `licence licence-${kind}`, d, "fill-rule": "evenodd" });
        if (typeof entry === "string") path.dataset.iso3 = entry;
        this.layers.licence.appendChild(path);
      }
    };
    draw(allowed, "allowed");
    draw(prohibited, "prohibited");
  }

  // chips: [{chip_id, verdict, sound_region (GeoJSON), estimate: {lat_deg, lon_deg} | null}]
  setChips(chips) {
    this.layers.regions.replaceChildren();
    this.layers.chips.replaceChildren();
    for (const chip of chips) {
      const verdict = chip.verdict ?? "unknown";
      if (chip.sound_region) {
        const region = el("path", {
          class: `sound-region verdict-${verdict}`,
          d: geometryPath(chip.sound_region),
          "fill-rule": "evenodd",
          "data-chip-id": chip.chip_id,
        });
        region.appendChild(el("title")).textContent = `${chip.chip_id}: sound region (${verdict})`;
        this.layers.regions.appendChild(region);
      }
      if (chip.estimate) {
        const marker = el("circle", {
          class: `chip-marker verdict-${verdict}`,
          cx: chip.estimate.lon_deg,
          cy: -chip.estimate.lat_deg,
          "data-marker": "chip",
          "data-chip-id": chip.chip_id,
          "data-verdict": verdict,
        });
        marker.appendChild(el("title")).textContent = `${chip.chip_id} (${verdict})`;
        marker.addEventListener("click", () => this.onChipClick(chip.chip_id));
        this.layers.chips.appendChild(marker);
      }
    }
    this.applyView();
  }

  // landmarks: [{landmark_id, lat_deg, lon_deg, up}]
  setLandmarks(landmarks) {
    this.layers.landmarks.replaceChildren();
    for (const landmark of landmarks) {
      const marker = el("circle", {
        class: `landmark-marker ${landmark.up ? "up" : "down"}`,
        cx: landmark.lon_deg,
        cy: -landmark.lat_deg,
        "data-marker": "landmark",
        "data-landmark-id": landmark.landmark_id,
      });
      marker.appendChild(el("title")).textContent =
        `landmark ${landmark.landmark_id} (${landmark.up ? "up" : "down"})`;
      this.layers.landmarks.appendChild(marker);
    }
    this.applyView();
  }
}
