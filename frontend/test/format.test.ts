import { describe, expect, it } from "vitest";
import { cameraName, clockTime, durationText, pathText, periodStart, selectPeople, sinceText, upsertVisit } from "../src/format";
import { DE_TEXTS, EN_TEXTS, t } from "../src/i18n";
import type { HomeAssistant, PersonItem, VisitItem } from "../src/types";

const en = { language: "en" } as HomeAssistant;
const de = { language: "de" } as HomeAssistant;
const NOW = 1_765_000_000;

function person(over: Partial<PersonItem>): PersonItem {
  return {
    entry_id: "e", person_id: "a0b1c2d3e4f5", label: "Visitor 1", named: false, known: false, status: "unknown",
    uncertain: null, present: false, camera: null, cameras: ["front"], first_seen: NOW - 1000, last_seen: NOW - 100,
    visit_count: 1, visit_id: null, visits_today: 1, thumbnail_url: null, ...over,
  };
}

function visit(over: Partial<VisitItem>): VisitItem {
  return {
    entry_id: "e", visit_id: "v1", person_id: "a0b1c2d3e4f5", label: "Visitor 1", known: false, is_new_identity: true,
    started_at: NOW - 120, last_seen: NOW - 60, ended_at: null, cameras: ["front_door"], first_camera: "front_door",
    last_camera: "front_door", sightings: 3, snapshot_url: null, thumbnail_url: null, risk: null, path: [], ...over,
  };
}

describe("texts", () => {
  it("has every English text in German too", () => {
    expect(Object.keys(DE_TEXTS).sort()).toEqual(Object.keys(EN_TEXTS).sort());
  });
  it("follows Home Assistant's language and falls back to English", () => {
    expect(t(de, "household")).toBe("Haushalt");
    expect(t({ language: "fr" } as HomeAssistant, "household")).toBe("Household");
    expect(t(en, "probably", { label: "Visitor 4" })).toBe("probably Visitor 4");
  });
});

describe("formatting", () => {
  it("names cameras for people", () => expect(cameraName("front_door")).toBe("Front door"));
  it("says how long ago", () => {
    expect(sinceText(en, NOW - 30, NOW)).toBe("just now");
    expect(sinceText(de, NOW - 300, NOW)).toBe("vor 5 min");
  });
  it("formats durations", () => {
    expect(durationText(en, 42)).toBe("42 s");
    expect(durationText(en, 3900)).toBe("1 h 5 min");
  });
  it("shows the path across cameras with times", () => {
    const v = visit({ path: [{ camera: "front_door", at: NOW - 120 }, { camera: "driveway", at: null }] });
    expect(pathText(en, v)).toMatch(/^Front door \d\d:\d\d( [AP]M)? → Driveway$/);
  });
  it("starts today at local midnight", () => {
    const now = new Date(2026, 11, 6, 14, 2);
    expect(periodStart("today", now)).toBe(new Date(2026, 11, 6).getTime() / 1000);
    expect(periodStart("24h", now)).toBe(now.getTime() / 1000 - 86400);
  });
});

describe("people selection", () => {
  const people = [
    person({ person_id: "1", label: "Visitor 2", last_seen: NOW - 50 }),
    person({ person_id: "2", label: "Alice", status: "household", known: true, present: true, last_seen: NOW - 500 }),
    person({ person_id: "3", label: "Visitor 10", last_seen: NOW - 3 * 86400 }),
  ];
  it("shows present people first, then the most recently seen, and drops old strangers", () => {
    expect(selectPeople(people, {}, NOW).map((p) => p.person_id)).toEqual(["2", "1"]);
  });
  it("filters", () => {
    expect(selectPeople(people, { filter: "present" }, NOW).map((p) => p.label)).toEqual(["Alice"]);
    expect(selectPeople(people, { filter: "unknown", hours: 96 }, NOW).map((p) => p.label)).toEqual(["Visitor 2", "Visitor 10"]);
  });
  it("sorts by name with numbers in order", () => {
    expect(selectPeople(people, { sort: "name", hours: 96 }, NOW).map((p) => p.label)).toEqual(["Alice", "Visitor 2", "Visitor 10"]);
  });
});

describe("live visits", () => {
  const window = { start: NOW - 86400, limit: 2 };
  it("puts a new visit on top and replaces an updated one", () => {
    let list = upsertVisit([], visit({ visit_id: "a", started_at: NOW - 500 }), window);
    list = upsertVisit(list, visit({ visit_id: "b", started_at: NOW - 100 }), window);
    expect(list.map((v) => v.visit_id)).toEqual(["b", "a"]);
    list = upsertVisit(list, visit({ visit_id: "a", started_at: NOW - 500, ended_at: NOW - 50 }), window);
    expect(list.find((v) => v.visit_id === "a")?.ended_at).toBe(NOW - 50);
    list = upsertVisit(list, visit({ visit_id: "c", started_at: NOW - 10 }), window);
    expect(list.map((v) => v.visit_id)).toEqual(["c", "b"]);
  });
  it("keeps the risk when a later update carries none, and honours the lowest level", () => {
    const risky = visit({ risk: { level: "high", score: 70, reasons: [], final: false, source: "rules", summary: null, timestamp: NOW } });
    let list = upsertVisit([], risky, { ...window, minLevel: "medium" });
    list = upsertVisit(list, visit({ ended_at: NOW }), { ...window, minLevel: "medium" });
    expect(list[0].risk?.level).toBe("high");
    expect(upsertVisit([], visit({}), { ...window, minLevel: "medium" })).toEqual([]);
  });
});

describe("clock times", () => {
  it("follow the user's 12/24 hour setting", () => {
    const at = new Date(2026, 11, 6, 14, 2).getTime() / 1000;
    expect(clockTime({ language: "en", locale: { language: "en", time_format: "24" } } as HomeAssistant, at)).toBe("14:02");
    expect(clockTime({ language: "de", locale: { language: "de", time_format: "12" } } as HomeAssistant, at)).toMatch(/^02:02\s?PM$/i);
  });
});
