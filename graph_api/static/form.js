// Effect forms generated from the `effects` catalog: nothing here knows an effect by name
// except the reverb impulse, which also offers presets and uploaded files.

const IMPULSE_PRESETS = ["room", "hall", "plate"];
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function niceStep(param) {
  if (param.type === "INT") return 1;
  const span = (param.max ?? 1000) - (param.min ?? 0);
  if (span <= 2) return 0.01;
  if (span <= 200) return 0.1;
  return 1;
}

/** The range check the server does, for instant feedback ("" when fine). */
function rangeProblem(param, value, context) {
  if (param.min !== null && param.min !== undefined) {
    if (param.minExclusive ? value <= param.min : value < param.min) {
      return `must be ${param.minExclusive ? ">" : "≥"} ${param.min}`;
    }
  }
  if (param.max !== null && param.max !== undefined) {
    if (param.maxExclusive ? value >= param.max : value > param.max) {
      return `must be ${param.maxExclusive ? "<" : "≤"} ${param.max}`;
    }
  }
  if (param.belowNyquist && context.sampleRate() && value >= context.sampleRate() / 2) {
    return `must be below ${context.sampleRate() / 2} Hz (half the sample rate)`;
  }
  if (param.type === "INT" && !Number.isInteger(value)) return "must be a whole number";
  return "";
}

/**
 * One labelled control for a scalar parameter. Returns {element, read(errors, path)}.
 * `context` gives sampleRate() and impulseChoices() (uploaded files as {id, label}).
 */
function scalarField(param, context) {
  const id = nextId("p");
  const helpId = `${id}-help`;
  const unit = param.unit ? el("span", { class: "unit", id: `${id}-unit`, text: param.unit }) : null;
  const describedBy = [unit ? `${id}-unit` : null, helpId].filter(Boolean).join(" ");
  let control;

  if (param.type === "BOOLEAN") {
    control = el("input", { type: "checkbox", id, "aria-describedby": helpId });
    control.checked = Boolean(param.default);
  } else if (param.type === "ENUM") {
    control = el("select", { id, "aria-describedby": helpId });
    if (param.nullable) control.append(el("option", { value: "", text: "(none)" }));
    for (const choice of param.choices) control.append(el("option", { value: choice, text: choice }));
    control.value = param.default ?? (param.nullable ? "" : param.choices[0]);
  } else if (param.type === "STRING" && param.name === "impulse") {
    control = el("select", { id, "aria-describedby": helpId });
    const fill = () => {
      const current = control.value || param.default || IMPULSE_PRESETS[0];
      control.replaceChildren(
        el("optgroup", { label: "Presets" }, ...IMPULSE_PRESETS.map((p) => el("option", { value: p, text: p }))),
      );
      const files = context.impulseChoices();
      if (files.length) {
        control.append(
          el("optgroup", { label: "Uploaded files" }, ...files.map((f) => el("option", { value: f.id, text: f.label }))),
        );
      }
      control.value = current;
      if (!control.value) control.value = IMPULSE_PRESETS[0];
    };
    fill();
    context.onFilesChanged(fill);
  } else if (param.type === "STRING") {
    control = el("input", { type: "text", id, "aria-describedby": helpId });
    control.value = param.default ?? "";
  } else {
    control = el("input", {
      type: "number",
      id,
      inputmode: "decimal",
      min: param.min ?? undefined,
      max: param.max ?? undefined,
      step: niceStep(param),
      "aria-describedby": describedBy,
      required: param.required,
      placeholder: param.nullable ? "none" : param.required ? "required" : undefined,
    });
    control.value = param.default ?? "";
  }

  const help = el("small", { class: "help", id: helpId, text: param.description });
  const problem = el("span", { class: "problem", "aria-live": "polite" });
  // The marker stays outside the label, so the accessible name is exactly the parameter name.
  const marker = param.required ? el("span", { class: "req", title: "required", "aria-hidden": "true", text: "*" }) : null;
  const element = el(
    "div",
    { class: `field field-${param.type.toLowerCase()}` },
    el("div", { class: "label-line" }, el("label", { for: id, text: param.name }), marker),
    el("div", { class: "control" }, control, unit),
    problem,
    help,
  );

  const check = () => {
    const issue = validate();
    problem.textContent = issue;
    control.classList.toggle("bad", Boolean(issue));
    control.setAttribute("aria-invalid", issue ? "true" : "false");
    return issue;
  };
  function validate() {
    if (param.type !== "FLOAT" && param.type !== "INT") return "";
    if (control.value === "") return param.required ? "required" : "";
    const value = Number(control.value);
    if (!Number.isFinite(value)) return "not a number";
    return rangeProblem(param, value, context);
  }
  control.addEventListener("input", check);
  control.addEventListener("change", check);

  function read(errors, path) {
    const issue = check();
    if (issue) errors.push(`${path}.${param.name}: ${issue}`);
    if (param.type === "BOOLEAN") return control.checked;
    if (param.type === "FLOAT" || param.type === "INT") {
      if (control.value === "") return param.nullable ? null : undefined;
      return Number(control.value);
    }
    if (control.value === "") return param.nullable ? null : undefined;
    return control.value;
  }
  return { element, read };
}

/** A repeatable group of sub-forms (LIST of records), with add/remove and item limits. */
function listField(param, context) {
  const itemName = param.name.endsWith("s") ? param.name.slice(0, -1) : `${param.name} item`;
  const minItems = param.min ?? 0;
  const maxItems = param.max ?? Infinity;
  const items = [];
  const list = el("div", { class: "list-items" });
  const addButton = el("button", {
    type: "button",
    class: "secondary small",
    text: `Add ${itemName}`,
    onclick: () => add(),
  });
  const element = el(
    "fieldset",
    { class: "list" },
    el("legend", { text: param.name }),
    el("small", { class: "help", text: param.description }),
    list,
    addButton,
  );

  function refresh() {
    items.forEach((item, i) => {
      item.legend.textContent = `${itemName} ${i + 1}`;
      item.remove.textContent = "Remove";
      item.remove.setAttribute("aria-label", `Remove ${itemName} ${i + 1}`);
      item.remove.disabled = items.length <= minItems;
    });
    addButton.disabled = items.length >= maxItems;
  }

  function add() {
    const legend = el("legend");
    const fields = param.fields.map((f) => makeField(f, context));
    const item = { legend, fields, remove: el("button", { type: "button", class: "link danger" }) };
    item.element = el(
      "fieldset",
      { class: "list-item" },
      legend,
      el("div", { class: "fields" }, ...fields.map((f) => f.element)),
      item.remove,
    );
    item.remove.addEventListener("click", () => {
      items.splice(items.indexOf(item), 1);
      item.element.remove();
      refresh();
    });
    items.push(item);
    list.append(item.element);
    refresh();
  }

  for (let i = 0; i < Math.max(minItems, 1); i++) add();

  function read(errors, path) {
    if (items.length < minItems) errors.push(`${path}.${param.name}: at least ${minItems} needed`);
    return items.map((item, i) => readFields(param.fields, item.fields, errors, `${path}.${param.name}[${i}]`));
  }
  return { element, read };
}

/** A nested object (OBJECT); when nullable, a checkbox decides whether it is sent at all. */
function objectField(param, context) {
  const fields = param.fields.map((f) => makeField(f, context));
  const id = nextId("o");
  const toggle = param.nullable ? el("input", { type: "checkbox", id }) : null;
  const body = el("div", { class: "fields" }, ...fields.map((f) => f.element));
  const sync = () => {
    body.hidden = Boolean(toggle && !toggle.checked);
  };
  if (toggle) toggle.addEventListener("change", sync);
  sync();
  const element = el(
    "fieldset",
    { class: "list" },
    el("legend", { text: param.name }),
    el("small", { class: "help", text: param.description }),
    toggle ? el("div", { class: "label-line" }, toggle, el("label", { for: id, text: `use ${param.name}` })) : null,
    body,
  );
  function read(errors, path) {
    if (toggle && !toggle.checked) return null;
    return readFields(param.fields, fields, errors, `${path}.${param.name}`);
  }
  return { element, read };
}

function makeField(param, context) {
  if (param.type === "LIST") return listField(param, context);
  if (param.type === "OBJECT") return objectField(param, context);
  return scalarField(param, context);
}

function readFields(params, fields, errors, path) {
  const values = {};
  params.forEach((param, i) => {
    const value = fields[i].read(errors, path);
    if (value !== undefined) values[param.name] = value;
  });
  return values;
}

/**
 * The form of one effect of the chain. Returns {element, effect, read(errors, index), setIndex(i)}
 * where read() gives the `EffectInput` object, e.g. `{gain: {db: -3}}`.
 */
export function effectForm(effect, context, actions) {
  const fields = effect.params.map((p) => makeField(p, context));
  const legend = el("legend");
  const up = el("button", { type: "button", class: "icon", text: "↑", onclick: () => actions.move(entry, -1) });
  const down = el("button", { type: "button", class: "icon", text: "↓", onclick: () => actions.move(entry, 1) });
  const remove = el("button", { type: "button", class: "icon danger", text: "✕", onclick: () => actions.remove(entry) });
  const element = el(
    "li",
    { class: "effect" },
    el(
      "fieldset",
      {},
      legend,
      el("div", { class: "effect-head" }, el("p", { class: "description", text: effect.description }), el("div", { class: "tools" }, up, down, remove)),
      el("div", { class: "fields" }, ...fields.map((f) => f.element)),
    ),
  );
  const entry = {
    element,
    effect,
    setIndex(index, count) {
      legend.textContent = `${index + 1}. ${effect.name}`;
      up.setAttribute("aria-label", `Move ${effect.name} (step ${index + 1}) up`);
      down.setAttribute("aria-label", `Move ${effect.name} (step ${index + 1}) down`);
      remove.setAttribute("aria-label", `Remove ${effect.name} (step ${index + 1})`);
      up.disabled = index === 0;
      down.disabled = index === count - 1;
    },
    read(errors, index) {
      return { [effect.name]: readFields(effect.params, fields, errors, `${index + 1}. ${effect.name}`) };
    },
  };
  return entry;
}
