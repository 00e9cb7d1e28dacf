// The interactive reference page of /api/docs (served with it; no other script runs there).
"use strict";
const DOCUMENT_URL = "/api/v1/openapi.json";
const METHODS = ["get", "post", "put", "patch", "delete"];

/** An element with text (never HTML) and children. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

let spec = null;

/** The schema a `$ref` names (only local references exist in this document). */
function resolve(schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) {
    const name = schema.$ref.replace("#/components/schemas/", "");
    schema = (spec.components && spec.components.schemas || {})[name];
  }
  return schema || {};
}

/** A one-line description of a schema's type. */
function typeName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.replace("#/components/schemas/", "");
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    if (schema[key]) return schema[key].map(typeName).join(key === "allOf" ? " & " : " | ");
  }
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
  if (type === "array") return typeName(schema.items) + "[]";
  return schema.format ? type + " (" + schema.format + ")" : type;
}

/** Rules of a schema worth showing: lengths, bounds, pattern. */
function rules(schema) {
  const s = resolve(schema);
  const parts = [];
  if (s.minLength != null || s.maxLength != null) parts.push("length " + (s.minLength ?? 0) + "–" + (s.maxLength ?? "∞"));
  if (s.minimum != null || s.maximum != null) parts.push("range " + (s.minimum ?? "−∞") + "–" + (s.maximum ?? "∞"));
  if (s.pattern) parts.push("pattern " + s.pattern);
  if (s.maxItems != null) parts.push("at most " + s.maxItems + " items");
  return parts.join("; ");
}

/** A schema as a nested table of its properties, to `depth` levels. */
function schemaView(schema, depth) {
  const s = resolve(schema);
  const wrap = el("div");
  const name = typeName(schema);
  if (s.description) wrap.append(el("p", { class: "muted" }, s.description));
  let properties = s.properties;
  let required = s.required || [];
  if (!properties && s.allOf) {
    properties = {};
    for (const part of s.allOf) {
      const r = resolve(part);
      Object.assign(properties, r.properties || {});
      required = required.concat(r.required || []);
    }
  }
  if (s.type === "array" && s.items) {
    wrap.append(el("p", {}, "An array of ", el("code", {}, typeName(s.items)), ":"));
    if (depth > 0) wrap.append(schemaView(s.items, depth - 1));
    return wrap;
  }
  if (!properties) {
    wrap.append(el("code", {}, name), " ", el("span", { class: "muted" }, rules(schema)));
    return wrap;
  }
  const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "about")));
  for (const [field, prop] of Object.entries(properties)) {
    const about = el("td", {}, (prop.description || resolve(prop).description || ""), " ",
      el("span", { class: "muted" }, rules(prop)));
    const nested = resolve(prop);
    if (depth > 0 && (nested.properties || (nested.type === "array" && resolve(nested.items).properties))) {
      const more = el("details", {}, el("summary", {}, "fields"), schemaView(prop, depth - 1));
      about.append(more);
    }
    table.append(el("tr", {},
      el("td", {}, el("code", {}, field), required.includes(field) ? " *" : ""),
      el("td", {}, el("code", {}, typeName(prop))), about));
  }
  wrap.append(table);
  return wrap;
}

/** A JSON example of a schema, for the body of a "try it" form. */
function example(schema, depth) {
  const s = resolve(schema);
  if (depth > 4) return null;
  if (s.examples && s.examples.length) return s.examples[0];
  if (s.example !== undefined) return s.example;
  if (s.enum) return s.enum[0];
  if (s.oneOf) return example(s.oneOf.find((x) => x.type !== "null") || s.oneOf[0], depth + 1);
  if (s.allOf) return Object.assign({}, ...s.allOf.map((x) => example(x, depth + 1)));
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  if (s.properties) {
    const out = {};
    for (const field of s.required || []) out[field] = example(s.properties[field], depth + 1);
    return out;
  }
  switch (type) {
    case "string": return s.pattern && s.pattern.startsWith("^[Hh]") ? "https://example.com/" : "";
    case "integer": case "number": return s.minimum ?? 0;
    case "boolean": return false;
    case "array": return [];
    default: return null;
  }
}

/** The "try it" form of one operation. */
function tryIt(path, method, operation) {
  const form = el("form");
  const inputs = [];
  for (const p of operation.parameters || []) {
    const input = el("input", { type: "text", "data-in": p.in, "data-name": p.name });
    inputs.push(input);
    form.append(el("label", {}, el("code", {}, p.name), " (" + p.in + (p.required ? ", required" : "") + ")", input));
  }
  let body = null;
  const json = operation.requestBody && operation.requestBody.content && operation.requestBody.content["application/json"];
  if (json) {
    body = el("textarea", { spellcheck: "false" });
    body.value = JSON.stringify(example(json.schema, 0), null, 2);
    form.append(el("label", {}, "JSON body", body));
  }
  const output = el("pre", { hidden: "" });
  form.append(el("p", {}, el("button", { type: "submit" }, "Send")), output);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const input of inputs) {
      const value = input.value;
      if (value === "") continue;
      const where = input.getAttribute("data-in");
      const name = input.getAttribute("data-name");
      if (where === "path") url = url.replace("{" + name + "}", encodeURIComponent(value));
      else if (where === "query") query.append(name, value);
      else if (where === "header") headers[name] = value;
    }
    if (query.toString()) url += "?" + query;
    const key = document.getElementById("api-key").value.trim();
    if (key) headers["Authorization"] = "Bearer " + key;
    const init = { method: method.toUpperCase(), headers, credentials: "omit" };
    if (body) {
      headers["Content-Type"] = "application/json";
      init.body = body.value;
    }
    output.hidden = false;
    output.textContent = init.method + " " + url + " …";
    try {
      const response = await fetch(url, init);
      const type = response.headers.get("content-type") || "";
      let text;
      if (type.startsWith("image/")) text = "(" + type + ", " + (await response.blob()).size + " bytes)";
      else {
        text = await response.text();
        if (type.includes("json")) {
          try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as sent */ }
        }
      }
      output.textContent = response.status + " " + response.statusText + "\n\n" + text;
    } catch (err) {
      output.textContent = "The request failed: " + err;
    }
  });
  return el("details", {}, el("summary", {}, "Try it"), form);
}

/** One operation: summary, parameters, body, answers, and its form. */
function operationView(path, method, operation, anchor) {
  const body = el("div");
  if (operation.description) body.append(el("p", {}, operation.description));
  if (operation.security && operation.security.length === 1 && Object.keys(operation.security[0]).length === 0) {
    body.append(el("p", { class: "muted" }, "No credentials needed."));
  }
  const params = operation.parameters || [];
  if (params.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "about")));
    for (const p of params) {
      table.append(el("tr", {},
        el("td", {}, el("code", {}, p.name), p.required ? " *" : ""),
        el("td", {}, p.in),
        el("td", {}, el("code", {}, typeName(p.schema))),
        el("td", {}, p.description || "", " ", el("span", { class: "muted" }, rules(p.schema)))));
    }
    body.append(el("h4", {}, "Parameters"), table);
  }
  const request = operation.requestBody && operation.requestBody.content;
  if (request) {
    for (const [type, media] of Object.entries(request)) {
      body.append(el("h4", {}, "Request body (" + type + ")"), schemaView(media.schema, 2));
    }
  }
  body.append(el("h4", {}, "Answers"));
  for (const [status, response] of Object.entries(operation.responses || {})) {
    const item = el("details", {}, el("summary", {}, el("strong", {}, status), " ", response.description || ""));
    for (const [type, media] of Object.entries(response.content || {})) {
      item.append(el("p", { class: "muted" }, type), schemaView(media.schema, 2));
    }
    body.append(item);
  }
  body.append(tryIt(path, method, operation));
  const summary = operation.summary || "";
  return el("details", { class: "op", id: anchor },
    el("summary", {}, el("span", { class: "method " + method }, method), " ", path, " ",
      el("span", { class: "muted" }, summary)),
    body);
}

function render() {
  const info = spec.info || {};
  document.getElementById("title").textContent = (info.title || "API") + " " + (info.version || "");
  document.getElementById("description").textContent = info.description || "";
  const byTag = new Map();
  for (const tag of spec.tags || []) byTag.set(tag.name, { about: tag.description, ops: [] });
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const tag = (operation.tags && operation.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, { about: "", ops: [] });
      byTag.get(tag).ops.push([path, method, operation]);
    }
  }
  const nav = document.getElementById("nav");
  const main = document.getElementById("operations");
  let n = 0;
  for (const [tag, { about, ops }] of byTag) {
    if (!ops.length) continue;
    nav.append(el("h2", {}, tag));
    main.append(el("h2", {}, tag), about ? el("p", { class: "muted" }, about) : null);
    for (const [path, method, operation] of ops) {
      const anchor = "op-" + (n++);
      nav.append(el("a", { href: "#" + anchor }, el("span", { class: "method " + method }, method), path));
      main.append(operationView(path, method, operation, anchor));
    }
  }
  openTarget();
}

/** Opens the operation the address names (a link in the list). */
function openTarget() {
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target) target.open = true;
}
window.addEventListener("hashchange", openTarget);

fetch(DOCUMENT_URL, { credentials: "omit" })
  .then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  })
  .then((document_) => { spec = document_; render(); })
  .catch((err) => {
    const p = document.getElementById("description");
    p.className = "error";
    p.textContent = "Cannot read " + DOCUMENT_URL + ": " + err.message;
  });
