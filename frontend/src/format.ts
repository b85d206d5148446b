// Pure formatting and data helpers (unit tested in test/format.test.ts).
import { language, t } from "./i18n";
import type {
  HomeAssistant,
  PeopleFilter,
  PeopleSort,
  PersonItem,
  RiskLevel,
  VisitItem,
} from "./types";

export const RISK_LEVELS: RiskLevel[] = ["low", "medium", "high", "critical"];

/** "front_door" -> "Front door". */
export function cameraName(camera: string | null | undefined): string {
  if (!camera) return "";
  const words = camera.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** "14:02" or "2:02 PM", following the user's time format setting in Home Assistant. */
export function clockTime(hass: HomeAssistant | undefined, unix: number): string {
  const format = hass?.locale?.time_format;
  const options: Intl.DateTimeFormatOptions = { hour: "2-digit", minute: "2-digit" };
  if (format === "12" || format === "24") options.hour12 = format === "12";
  const lang = format === "system" ? undefined : language(hass);
  return new Date(unix * 1000).toLocaleTimeString(lang, options);
}

/** "just now", "5 min ago", "3 h ago", "yesterday 14:02", or a date. */
export function sinceText(hass: HomeAssistant | undefined, unix: number, now: number = Date.now() / 1000): string {
  const age = Math.max(0, now - unix);
  if (age < 60) return t(hass, "just_now");
  if (age < 3600) return t(hass, "min_ago", { n: Math.floor(age / 60) });
  const then = new Date(unix * 1000);
  const today = new Date(now * 1000);
  if (then.toDateString() === today.toDateString()) return t(hass, "hours_ago", { n: Math.floor(age / 3600) });
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (then.toDateString() === yesterday.toDateString()) return t(hass, "yesterday", { time: clockTime(hass, unix) });
  return then.toLocaleDateString(language(hass), { day: "numeric", month: "short" }) + " " + clockTime(hass, unix);
}

/** "45 s", "12 min", "1 h 5 min". */
export function durationText(hass: HomeAssistant | undefined, seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return t(hass, "seconds", { n: s });
  if (s < 3600) return t(hass, "minutes", { n: Math.round(s / 60) });
  return t(hass, "hours", { n: Math.floor(s / 3600), m: Math.round((s % 3600) / 60) });
}

/** The path across cameras with times: "Front 14:02 → Back 14:03". */
export function pathText(hass: HomeAssistant | undefined, visit: VisitItem): string {
  const steps = visit.path.length ? visit.path : visit.cameras.map((camera) => ({ camera, at: null }));
  return steps
    .map((step) => (step.at ? `${cameraName(step.camera)} ${clockTime(hass, step.at)}` : cameraName(step.camera)))
    .join(" → ");
}

export function visitDuration(visit: VisitItem, now: number = Date.now() / 1000): number | null {
  if (visit.started_at == null) return null;
  const end = visit.ended_at ?? visit.last_seen ?? now;
  return Math.max(0, end - visit.started_at);
}

/** The people a card shows: recently seen (or present), filtered and sorted. */
export function selectPeople(
  people: PersonItem[],
  options: { filter?: PeopleFilter; sort?: PeopleSort; hours?: number; max?: number },
  now: number = Date.now() / 1000,
): PersonItem[] {
  const hours = options.hours ?? 24;
  const recent = people.filter(
    (p) => p.present || p.status !== "unknown" || (p.last_seen != null && now - p.last_seen <= hours * 3600),
  );
  const filtered = recent.filter((p) => {
    if (options.filter === "present") return p.present;
    if (options.filter === "unknown") return p.status === "unknown";
    return true;
  });
  const byRecent = (a: PersonItem, b: PersonItem) =>
    Number(b.present) - Number(a.present) || (b.last_seen ?? 0) - (a.last_seen ?? 0);
  const sorted = [...filtered].sort((a, b) => {
    if (options.sort === "name") return a.label.localeCompare(b.label, undefined, { numeric: true });
    if (options.sort === "visits") return b.visits_today - a.visits_today || b.visit_count - a.visit_count || byRecent(a, b);
    return byRecent(a, b);
  });
  return options.max ? sorted.slice(0, options.max) : sorted;
}

/** Put a live visit into a list that is newest first (replacing its earlier version). */
export function upsertVisit(
  visits: VisitItem[],
  visit: VisitItem,
  window: { start: number; minLevel?: RiskLevel; limit: number },
): VisitItem[] {
  const rest = visits.filter((v) => v.visit_id !== visit.visit_id);
  const old = visits.find((v) => v.visit_id === visit.visit_id);
  const merged: VisitItem = old
    ? {
        ...old,
        ...Object.fromEntries(Object.entries(visit).filter(([, value]) => value !== null && value !== undefined)),
        path: visit.path.length >= old.path.length ? visit.path : old.path,
      }
    : visit;
  const ended = merged.ended_at ?? Number.POSITIVE_INFINITY;
  if (ended < window.start) return rest;
  if (window.minLevel && !atLeast(merged.risk?.level ?? null, window.minLevel)) {
    return rest;
  }
  const list = [...rest, merged].sort((a, b) => (b.started_at ?? 0) - (a.started_at ?? 0));
  return list.slice(0, window.limit);
}

export function atLeast(level: RiskLevel | null, min: RiskLevel): boolean {
  return level != null && RISK_LEVELS.indexOf(level) >= RISK_LEVELS.indexOf(min);
}

/** Start of the card's period in Unix seconds. */
export function periodStart(period: string | undefined, now: Date = new Date()): number {
  if (period === "24h") return now.getTime() / 1000 - 86400;
  if (period === "7d") return now.getTime() / 1000 - 7 * 86400;
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  return midnight.getTime() / 1000;
}
