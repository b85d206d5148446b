import { describe, expect, it } from "vitest";
import "../src/main";
import type { HomeAssistant, PeopleAnswer, VisitsEvent } from "../src/types";

// A stand-in for the browser's Home Assistant connection: records calls, feeds subscriptions.
function fakeHass(people: PeopleAnswer, admin = true) {
  const calls: { domain: string; service: string; data: Record<string, unknown> }[] = [];
  const subscribers: Record<string, (m: unknown) => void> = {};
  const hass = {
    language: "en",
    user: { id: "u", name: "u", is_admin: admin },
    connection: {
      subscribeMessage: async (cb: (m: unknown) => void, msg: Record<string, unknown>) => {
        subscribers[String(msg.type)] = cb;
        if (msg.type === "smart_reid/people/subscribe") cb(people);
        return async () => undefined;
      },
    },
    callWS: async (msg: Record<string, unknown>) => {
      if (msg.type === "smart_reid/visits") return { start: 0, end: 0, truncated: false, visits: [], errors: [] };
      throw new Error("unexpected");
    },
    callService: async (domain: string, service: string, data: Record<string, unknown>) => {
      calls.push({ domain, service, data });
      if (data.name === "bad") throw new Error("Name refused by the server");
    },
  } as unknown as HomeAssistant;
  return { hass, calls, subscribers };
}

const NOW = Date.now() / 1000;
const PEOPLE: PeopleAnswer = {
  servers: [{ entry_id: "e1", title: "Smart ReID", online: true, cameras: ["front"] }],
  people: [
    { entry_id: "e1", person_id: "a0b1c2d3e4f5", label: "Visitor 3", named: false, known: false, status: "unknown",
      uncertain: { similarity: 0.5, camera: "front" }, present: true, camera: "front", cameras: ["front"],
      first_seen: NOW - 60, last_seen: NOW - 5, visit_count: 1, visit_id: "v", visits_today: 1,
      thumbnail_url: "/api/smart_reid/e1/persons/a0b1c2d3e4f5/thumbnail.jpg?authSig=x" },
    { entry_id: "e1", person_id: "b1c2d3e4f5a6", label: "Alice", named: true, known: true, status: "household",
      uncertain: null, present: false, camera: null, cameras: ["back"], first_seen: NOW - 9000, last_seen: NOW - 4000,
      visit_count: 9, visit_id: null, visits_today: 2, thumbnail_url: null },
  ],
};

async function mount<T extends HTMLElement>(tag: string, config: Record<string, unknown>, hass: HomeAssistant): Promise<T> {
  const card = document.createElement(tag) as T & { setConfig(c: unknown): void; hass: HomeAssistant; updateComplete: Promise<unknown> };
  card.setConfig({ type: `custom:${tag}`, ...config });
  card.hass = hass;
  document.body.appendChild(card);
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 0));
    await card.updateComplete;
  }
  return card;
}

const root = (el: HTMLElement) => el.shadowRoot as ShadowRoot;

describe("people card", () => {
  it("shows people with pictures, badges and where they are", async () => {
    const { hass } = fakeHass(PEOPLE);
    const card = await mount("smart-reid-people-card", {}, hass);
    const tiles = root(card).querySelectorAll(".tile");
    expect(tiles.length).toBe(2);
    expect(tiles[0].textContent).toContain("Visitor 3");
    expect(tiles[0].textContent).toContain("probably Visitor 3");
    expect(tiles[0].textContent).toContain("Front · now");
    expect(tiles[0].querySelector("img")?.getAttribute("src")).toContain("authSig=");
    expect(tiles[1].textContent).toContain("Household");
    expect(tiles[1].textContent).toContain("2 visits today");
  });

  it("filters to unknown people", async () => {
    const { hass } = fakeHass(PEOPLE);
    const card = await mount("smart-reid-people-card", { filter: "unknown", layout: "compact" }, hass);
    expect(root(card).querySelectorAll(".row-item").length).toBe(1);
  });

  it("renames through the detail view and shows the service's error", async () => {
    const { hass, calls } = fakeHass(PEOPLE);
    const card = await mount<HTMLElement & { updateComplete: Promise<unknown> }>("smart-reid-people-card", {}, hass);
    (root(card).querySelector(".tile") as HTMLElement).click();
    await card.updateComplete;
    (root(card).querySelector("button.rename") as HTMLElement).click();
    await card.updateComplete;
    const input = root(card).querySelector("input.rename") as HTMLInputElement;
    input.value = "bad";
    (root(card).querySelector("form") as HTMLFormElement).requestSubmit();
    await new Promise((r) => setTimeout(r, 0));
    await card.updateComplete;
    expect(calls[0]).toEqual({ domain: "smart_reid", service: "rename_person", data: { config_entry_id: "e1", person_id: "a0b1c2d3e4f5", name: "bad" } });
    expect(root(card).querySelector("[role=alert]")?.textContent).toContain("Name refused by the server");
  });

  it("offers no actions to users who are not administrators", async () => {
    const { hass } = fakeHass(PEOPLE, false);
    const card = await mount<HTMLElement & { updateComplete: Promise<unknown> }>("smart-reid-people-card", {}, hass);
    (root(card).querySelector(".tile") as HTMLElement).click();
    await card.updateComplete;
    expect(root(card).querySelector("button.forget")).toBeNull();
    expect(root(card).textContent).toContain("Only administrators");
  });

  it("says so when the server is offline or nobody was seen", async () => {
    const { hass } = fakeHass({ servers: [{ ...PEOPLE.servers[0], online: false }], people: [] });
    const card = await mount("smart-reid-people-card", {}, hass);
    expect(root(card).querySelector(".notice.offline")).not.toBeNull();
    expect(root(card).querySelector(".empty")?.textContent).toContain("Nobody seen yet");
  });

  it("rejects a bad configuration with a clear message", () => {
    const card = document.createElement("smart-reid-people-card") as HTMLElement & { setConfig(c: unknown): void };
    expect(() => card.setConfig({ type: "x", layout: "table" })).toThrow(/layout must be grid or compact/);
  });
});

describe("visits card", () => {
  it("adds a live visit without a reload, with its path and risk", async () => {
    const { hass, subscribers } = fakeHass(PEOPLE);
    const card = await mount<HTMLElement & { updateComplete: Promise<unknown> }>("smart-reid-visits-card", {}, hass);
    expect(root(card).querySelector(".empty")?.textContent).toContain("Nothing happened");
    const event: VisitsEvent = {
      visit: {
        entry_id: "e1", visit_id: "9c8b7a6d5e4f", person_id: "a0b1c2d3e4f5", label: "Visitor 3", known: false,
        is_new_identity: true, started_at: NOW - 60, last_seen: NOW - 5, ended_at: null, cameras: ["front", "back"],
        first_camera: "front", last_camera: "back", sightings: 4, snapshot_url: "/s.jpg?authSig=y", thumbnail_url: null,
        path: [{ camera: "front", at: NOW - 60 }, { camera: "back", at: NOW - 20 }],
        risk: { level: "medium", score: 40, reasons: [{ code: "identity", text: "unknown person", points: 20 }], final: false, source: "rules", summary: null, timestamp: NOW },
      },
    };
    subscribers["smart_reid/visits/subscribe"](event);
    await card.updateComplete;
    const item = root(card).querySelector(".visit") as HTMLElement;
    expect(item.textContent).toContain("Visitor 3");
    expect(item.textContent).toMatch(/Front \d\d:\d\d.* → Back/);
    expect(item.textContent).toContain("medium");
    expect(item.textContent).toContain("unknown person");
  });

  it("keeps a visit whose person was recognised later, under their name; drops a duplicate", async () => {
    const { hass, subscribers } = fakeHass(PEOPLE);
    const card = await mount<HTMLElement & { updateComplete: Promise<unknown> }>("smart-reid-visits-card", {}, hass);
    const visit = (visit_id: string, label: string): VisitsEvent => ({
      visit: {
        entry_id: "e1", visit_id, person_id: `p-${visit_id}`, label, known: false,
        is_new_identity: true, started_at: NOW - 60, last_seen: NOW - 5, ended_at: null, cameras: ["front"],
        first_camera: "front", last_camera: "front", sightings: 4, snapshot_url: null, thumbnail_url: null,
        path: [{ camera: "front", at: NOW - 60 }], risk: null,
      },
    });
    const send = subscribers["smart_reid/visits/subscribe"];
    send(visit("v1", "Visitor 7"));
    send(visit("v2", "Visitor 8"));
    send({ merged: { person_id: "old", merged_person_id: "p-v1", merged_visit_id: "v1", visit_id: "v1", reason: "returning", label: "Visitor 2", known: false } });
    send({ merged: { person_id: "p-v1", merged_person_id: "p-v2", merged_visit_id: "v2", visit_id: "v1", reason: "same_person" } });
    await card.updateComplete;
    const items = [...root(card).querySelectorAll(".visit")].map((e) => e.textContent ?? "");
    expect(items).toHaveLength(1);
    expect(items[0]).toContain("Visitor 2");
    expect(items[0]).not.toContain("Visitor 7");
  });

  it("is listed in the card picker with both cards", () => {
    const cards = (window as unknown as { customCards: { type: string }[] }).customCards.map((c) => c.type);
    expect(cards).toEqual(expect.arrayContaining(["smart-reid-people-card", "smart-reid-visits-card"]));
  });
});

describe("editors", () => {
  it("offer every option with a translated label, in the card picker's editor", async () => {
    const { peopleSchema, visitsSchema } = await import("../src/editors");
    const de = { language: "de" } as HomeAssistant;
    expect(peopleSchema(de).map((s) => s.name)).toEqual(["title", "filter", "sort", "layout", "hours", "max_people", "entry_id"]);
    expect(visitsSchema(de).map((s) => s.name)).toEqual(["title", "period", "min_level", "limit", "show_snapshots", "entry_id"]);
    const editor = (await (customElements.get("smart-reid-visits-card") as unknown as { getConfigElement(): Promise<HTMLElement> }).getConfigElement()) as HTMLElement & { setConfig(c: unknown): void };
    expect(editor.tagName.toLowerCase()).toBe("smart-reid-visits-card-editor");
    const changes: unknown[] = [];
    editor.addEventListener("config-changed", (e) => changes.push((e as CustomEvent).detail.config));
    editor.setConfig({ type: "custom:smart-reid-visits-card", period: "today" });
    document.body.appendChild(editor);
    await (editor as unknown as { updateComplete: Promise<unknown> }).updateComplete;
    const form = editor.shadowRoot?.querySelector("ha-form") as HTMLElement;
    form.dispatchEvent(new CustomEvent("value-changed", { detail: { value: { type: "custom:smart-reid-visits-card", period: "7d", title: "" } } }));
    expect(changes).toEqual([{ type: "custom:smart-reid-visits-card", period: "7d" }]);
  });
});

describe("people card sorting", () => {
  it("sorts by name from the header", async () => {
    const { hass } = fakeHass(PEOPLE);
    const card = await mount<HTMLElement & { updateComplete: Promise<unknown> }>("smart-reid-people-card", {}, hass);
    const select = root(card).querySelector("select.sort") as HTMLSelectElement;
    select.value = "name";
    select.dispatchEvent(new Event("change"));
    await card.updateComplete;
    const names = [...root(card).querySelectorAll(".tile .name")].map((n) => n.textContent?.trim());
    expect(names).toEqual(["Alice", "Visitor 3"]);
  });
});
