// Modal dialogs: a confirmation that asks for the fields an action needs (always a
// "why"), and the step-up prompt that asks for a fresh TOTP code when the console
// answers 403 {"step_up": true}.

import { ApiError, post } from "./api.js";
import { h } from "./dom.js";

export class Cancelled extends Error {
  constructor() {
    super("cancelled");
  }
}

function modal(testid, title, body, actions) {
  const dialog = h("dialog", { class: "modal", testid }, h("h2", {}, title), body, actions);
  document.body.appendChild(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  return dialog;
}

function field(spec) {
  const id = `f-${spec.name}`;
  let input;
  if (spec.type === "select") {
    input = h(
      "select",
      { id, name: spec.name, testid: `field-${spec.name}` },
      spec.options.map(([value, label]) => h("option", { value }, label)),
    );
  } else {
    input = h("input", {
      id,
      name: spec.name,
      type: spec.type || "text",
      value: spec.value ?? "",
      required: spec.required !== false,
      testid: `field-${spec.name}`,
      inputmode: spec.inputmode,
      autocomplete: spec.autocomplete || "off",
      step: spec.type === "number" ? "any" : null,
      min: spec.min,
    });
  }
  return h("label", { class: "field", for: id }, h("span", {}, spec.label), input);
}

/** Ask the operator to confirm: resolves to the fields' values, or null when cancelled. */
export function ask({ title, text, fields = [], confirm = "Confirm", danger = false, testid = "confirm" }) {
  return new Promise((resolve) => {
    let answer = null;
    const form = h(
      "form",
      { method: "dialog", class: "dialog-form" },
      text ? h("p", { class: "dialog-text", testid: `${testid}-text` }, text) : null,
      fields.map(field),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", testid: `${testid}-cancel`, onclick: () => dialog.close() }, "Cancel"),
        h("button", { type: "submit", class: danger ? "danger" : "primary", testid: `${testid}-ok` }, confirm),
      ),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      answer = Object.fromEntries(new FormData(form).entries());
      dialog.close();
    });
    const dialog = modal(testid, title, form, null);
    dialog.addEventListener("close", () => resolve(answer));
  });
}

/** The step-up prompt: resolves to the new step_up_until_ms, or null when cancelled. */
export function stepUpPrompt(reason) {
  return new Promise((resolve) => {
    let until = null;
    const error = h("p", { class: "error", testid: "step-up-error", role: "alert" });
    const code = h("input", {
      name: "totp",
      type: "text",
      inputmode: "numeric",
      autocomplete: "one-time-code",
      pattern: "[0-9]{6,8}",
      required: true,
      testid: "step-up-code",
    });
    const form = h(
      "form",
      { class: "dialog-form" },
      h("p", { class: "dialog-text" }, reason || "This action needs a fresh code from your authenticator."),
      h("label", { class: "field" }, h("span", {}, "Authenticator code"), code),
      error,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", testid: "step-up-cancel", onclick: () => dialog.close() }, "Cancel"),
        h("button", { type: "submit", class: "primary", testid: "step-up-ok" }, "Verify"),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        const answer = await post("/api/step-up", { totp: code.value.trim() });
        until = answer.step_up_until_ms;
        dialog.close();
      } catch (e) {
        error.textContent = e instanceof ApiError && e.status === 401 ? "Wrong code, try the next one." : e.message;
        code.select();
      }
    });
    const dialog = modal("step-up", "Step-up verification", form, null);
    dialog.addEventListener("close", () => resolve(until));
    code.focus();
  });
}

/** Run call(); when the console asks for step-up, prompt for a code and run it again. */
export async function withStepUp(call, onSteppedUp) {
  try {
    return await call();
  } catch (e) {
    if (!(e instanceof ApiError) || !e.stepUp) throw e;
    const until = await stepUpPrompt();
    if (until === null) throw new Cancelled();
    onSteppedUp(until);
    return await call();
  }
}
