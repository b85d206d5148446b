// Visual editors: Home Assistant's own form element (`ha-form`) with a schema, as its cards do.
import { LitElement, html, type TemplateResult } from "lit";
import { t, type TextKey } from "./i18n";
import type { HomeAssistant, PeopleCardConfig, VisitsCardConfig } from "./types";

type Schema = Record<string, unknown>[];

const LABELS: Record<string, TextKey> = {
  title: "opt_title",
  filter: "opt_filter",
  sort: "opt_sort",
  layout: "opt_layout",
  hours: "opt_hours",
  max_people: "opt_max_people",
  period: "opt_period",
  min_level: "opt_min_level",
  limit: "opt_limit",
  show_snapshots: "opt_show_snapshots",
  entry_id: "opt_entry_id",
};

function select(hass: HomeAssistant | undefined, name: string, values: [string, TextKey][]): Record<string, unknown> {
  return {
    name,
    selector: { select: { mode: "dropdown", options: values.map(([value, key]) => ({ value, label: t(hass, key) })) } },
  };
}

export function peopleSchema(hass: HomeAssistant | undefined): Schema {
  return [
    { name: "title", selector: { text: {} } },
    select(hass, "filter", [["everyone", "filter_everyone"], ["present", "filter_present"], ["unknown", "filter_unknown"]]),
    select(hass, "sort", [["recent", "sort_recent"], ["name", "sort_name"], ["visits", "sort_visits"]]),
    select(hass, "layout", [["grid", "layout_grid"], ["compact", "layout_compact"]]),
    { name: "hours", selector: { number: { min: 1, max: 720, mode: "box" } } },
    { name: "max_people", selector: { number: { min: 1, max: 200, mode: "box" } } },
    { name: "entry_id", selector: { config_entry: { integration: "smart_reid" } } },
  ];
}

export function visitsSchema(hass: HomeAssistant | undefined): Schema {
  return [
    { name: "title", selector: { text: {} } },
    select(hass, "period", [["today", "period_today"], ["24h", "period_24h"], ["7d", "period_7d"]]),
    select(hass, "min_level", [["low", "risk_low"], ["medium", "risk_medium"], ["high", "risk_high"], ["critical", "risk_critical"]]),
    { name: "limit", selector: { number: { min: 1, max: 200, mode: "box" } } },
    { name: "show_snapshots", selector: { boolean: {} } },
    { name: "entry_id", selector: { config_entry: { integration: "smart_reid" } } },
  ];
}

abstract class BaseEditor<C extends { type: string }> extends LitElement {
  declare hass: HomeAssistant | undefined;
  declare protected _config: C | undefined;

  static properties = { hass: { attribute: false }, _config: { state: true } };

  protected abstract schema(): Schema;

  setConfig(config: C): void {
    this._config = config;
  }

  protected render(): TemplateResult {
    if (!this._config) return html``;
    return html`<ha-form
      .hass=${this.hass}
      .data=${this._config}
      .schema=${this.schema()}
      .computeLabel=${(s: { name: string }) => (LABELS[s.name] ? t(this.hass, LABELS[s.name]) : s.name)}
      @value-changed=${this._changed}
    ></ha-form>`;
  }

  private _changed(ev: CustomEvent<{ value: C }>): void {
    ev.stopPropagation();
    const config = { ...ev.detail.value } as Record<string, unknown>;
    for (const [key, value] of Object.entries(config)) if (value === "" || value === undefined) delete config[key];
    this._config = config as C;
    this.dispatchEvent(new CustomEvent("config-changed", { detail: { config }, bubbles: true, composed: true }));
  }
}

export class SmartReidPeopleCardEditor extends BaseEditor<PeopleCardConfig> {
  protected schema(): Schema {
    return peopleSchema(this.hass);
  }
}

export class SmartReidVisitsCardEditor extends BaseEditor<VisitsCardConfig> {
  protected schema(): Schema {
    return visitsSchema(this.hass);
  }
}
