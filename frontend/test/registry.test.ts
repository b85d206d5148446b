import { describe, expect, it } from "vitest";
import { defineCards } from "../src/main";

// A registry of its own, standing in for the scoped-registry shim Home Assistant's app swaps in
// for `window.customElements` while it boots (home-assistant/frontend#52960).
function shimRegistry() {
  const defined = new Map<string, CustomElementConstructor>();
  const waiting = new Map<string, (c: CustomElementConstructor) => void>();
  return {
    defined,
    get: (name: string) => defined.get(name),
    define: (name: string, element: CustomElementConstructor) => {
      if (defined.has(name)) throw new Error(`${name} is already defined`);
      defined.set(name, element);
      waiting.get(name)?.(element);
    },
    whenDefined: (name: string) =>
      defined.has(name)
        ? Promise.resolve(defined.get(name)!)
        : new Promise<CustomElementConstructor>((resolve) => waiting.set(name, resolve)),
  } as unknown as CustomElementRegistry & { defined: Map<string, CustomElementConstructor> };
}

describe("the cards' element definitions", () => {
  it("are made on the page's registry when the module loads", () => {
    expect(customElements.get("smart-reid-people-card")).toBeDefined();
    expect(customElements.get("smart-reid-visits-card")).toBeDefined();
    expect(customElements.get("smart-reid-people-card-editor")).toBeDefined();
  });

  it("are made again on a registry that replaced the one they went to, once only", () => {
    const shim = shimRegistry();
    expect(defineCards(shim)).toBe(4);
    expect([...shim.defined.keys()].sort()).toEqual([
      "smart-reid-people-card",
      "smart-reid-people-card-editor",
      "smart-reid-visits-card",
      "smart-reid-visits-card-editor",
    ]);
    expect(defineCards(shim)).toBe(0); // loaded twice: the first definitions stay
  });

  it("move to the registry Home Assistant's app swaps in, once the app is defined", async () => {
    const original = window.customElements;
    const native = shimRegistry();
    const shim = shimRegistry();
    const setRegistry = (value: CustomElementRegistry) =>
      Object.defineProperty(window, "customElements", { value, configurable: true });
    try {
      // The module runs first: its definitions go to the registry of that moment ...
      setRegistry(native);
      // @ts-expect-error a second, fresh copy of the module (Vite tells them apart by the query)
      await import("../src/main?before-the-app");
      expect(native.defined.has("smart-reid-people-card")).toBe(true);
      // ... then the app swaps in its shim, which has never heard of them ...
      setRegistry(shim);
      expect(shim.defined.has("smart-reid-people-card")).toBe(false);
      // ... and defines its own root element, which the registry of that moment sees too.
      native.define("home-assistant", class extends HTMLElement {});
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect([...shim.defined.keys()]).toContain("smart-reid-people-card");
      expect([...shim.defined.keys()]).toContain("smart-reid-visits-card");
    } finally {
      setRegistry(original);
    }
  });
});
