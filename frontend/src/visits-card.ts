import { LitElement, html, css, nothing, type PropertyValues, type TemplateResult } from "lit";
import { t } from "./i18n";
import { cameraName, clockTime, durationText, pathText, periodStart, sinceText, upsertVisit, visitDuration } from "./format";
import { shared } from "./styles";
import type { HomeAssistant, VisitItem, VisitsAnswer, VisitsCardConfig, VisitsEvent } from "./types";

export class SmartReidVisitsCard extends LitElement {
  declare hass: HomeAssistant | undefined;
  declare private _config: VisitsCardConfig;
  declare private _visits: VisitItem[] | undefined;
  declare private _error: string | undefined;
  declare private _warning: string | undefined;
  declare private _selected: VisitItem | undefined;
  private _unsubscribe?: Promise<() => Promise<void>>;
  private _loadedFor?: string;

  static properties = {
    hass: { attribute: false },
    _config: { state: true },
    _visits: { state: true },
    _error: { state: true },
    _warning: { state: true },
    _selected: { state: true },
  };

  constructor() {
    super();
    this._config = { type: "custom:smart-reid-visits-card" };
  }

  static getStubConfig(): VisitsCardConfig {
    return { type: "custom:smart-reid-visits-card", period: "today", limit: 20, show_snapshots: true };
  }

  static async getConfigElement(): Promise<HTMLElement> {
    return document.createElement("smart-reid-visits-card-editor");
  }

  setConfig(config: VisitsCardConfig): void {
    if (!config || typeof config !== "object") throw new Error("Invalid configuration");
    if (config.period && !["today", "24h", "7d"].includes(config.period)) {
      throw new Error(`period must be today, 24h or 7d (not ${config.period})`);
    }
    if (config.min_level && !["low", "medium", "high", "critical"].includes(config.min_level)) {
      throw new Error(`min_level must be low, medium, high or critical (not ${config.min_level})`);
    }
    this._config = config;
    this._loadedFor = undefined;
    this._stop();
    if (this.hass && this.isConnected) this._start();
  }

  getCardSize(): number {
    return 6;
  }

  getGridOptions(): Record<string, number> {
    return { columns: 12, min_columns: 6, rows: 6, min_rows: 3 };
  }

  connectedCallback(): void {
    super.connectedCallback();
    if (this.hass) this._start();
  }

  disconnectedCallback(): void {
    super.disconnectedCallback();
    this._stop();
  }

  protected willUpdate(changed: PropertyValues): void {
    if (changed.has("hass") && this.hass && !this._unsubscribe) this._start();
  }

  private get _limit(): number {
    return this._config.limit ?? 20;
  }

  private _stop(): void {
    const pending = this._unsubscribe;
    this._unsubscribe = undefined;
    pending?.then((stop) => stop()).catch(() => undefined);
  }

  private _start(): void {
    if (!this.hass || this._unsubscribe) return;
    const msg: Record<string, unknown> = { type: "smart_reid/visits/subscribe" };
    if (this._config.entry_id) msg.entry_id = this._config.entry_id;
    // Subscribe first, then load: a visit that starts in between is not lost.
    this._unsubscribe = this.hass.connection.subscribeMessage<VisitsEvent>((event) => this._live(event), msg);
    this._unsubscribe.catch((err: { code?: string; message?: string }) => {
      this._unsubscribe = undefined;
      this._error = err.code === "not_loaded" ? t(this.hass, "not_loaded") : t(this.hass, "error", { message: err.message ?? String(err) });
    });
    void this._load();
  }

  private async _load(): Promise<void> {
    if (!this.hass) return;
    const msg: Record<string, unknown> = {
      type: "smart_reid/visits",
      start: periodStart(this._config.period),
      limit: this._limit,
    };
    if (this._config.entry_id) msg.entry_id = this._config.entry_id;
    if (this._config.min_level) msg.min_level = this._config.min_level;
    try {
      const answer = await this.hass.callWS<VisitsAnswer>(msg);
      let visits = answer.visits;
      // Live visits that arrived while loading stay.
      for (const v of this._visits ?? []) visits = upsertVisit(visits, v, this._window());
      this._visits = visits;
      this._error = undefined;
      this._warning = answer.errors?.length ? t(this.hass, "offline") : undefined;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      this._error = e.code === "not_loaded" ? t(this.hass, "not_loaded") : e.code === "server_unreachable" ? t(this.hass, "offline") : t(this.hass, "error", { message: e.message ?? String(err) });
      this._visits = this._visits ?? [];
    }
  }

  private _window() {
    return { start: periodStart(this._config.period), minLevel: this._config.min_level, limit: this._limit };
  }

  private _live(event: VisitsEvent): void {
    if (event.visit) {
      this._visits = upsertVisit(this._visits ?? [], event.visit, this._window());
      if (this._selected?.visit_id === event.visit.visit_id) {
        this._selected = this._visits.find((v) => v.visit_id === event.visit?.visit_id) ?? this._selected;
      }
    } else if (event.labels) {
      const labels = event.labels;
      this._visits = (this._visits ?? []).map((v) => (labels[v.person_id] ? { ...v, label: labels[v.person_id] } : v));
      if (this._selected && labels[this._selected.person_id]) this._selected = { ...this._selected, label: labels[this._selected.person_id] };
    } else if (event.merged?.merged_visit_id) {
      const m = event.merged;
      if (m.reason === "returning") {
        // Someone taken for new was seen before: the visit stays, now theirs.
        const named = (v: VisitItem): VisitItem =>
          v.visit_id === m.merged_visit_id
            ? { ...v, person_id: m.person_id, label: m.label ?? v.label, known: m.known ?? v.known, is_new_identity: false }
            : v;
        this._visits = (this._visits ?? []).map(named);
        if (this._selected) this._selected = named(this._selected);
      } else {
        this._visits = (this._visits ?? []).filter((v) => v.visit_id !== m.merged_visit_id);
      }
    }
  }

  protected render(): TemplateResult {
    const hass = this.hass;
    return html`<ha-card>
      <div class="header">
        <div class="title">${this._config.title ?? t(hass, "visits_title")}</div>
        <div class="muted">${t(hass, `period_${this._config.period ?? "today"}`)}</div>
      </div>
      ${this._warning ? html`<div class="notice offline">${this._warning}</div>` : nothing}
      ${this._error ? html`<div class="notice error">${this._error}</div>` : nothing}
      <div class="content">${this._renderList()}</div>
      ${this._selected ? this._renderDetail(this._selected) : nothing}
    </ha-card>`;
  }

  private _renderList(): TemplateResult {
    const hass = this.hass;
    if (this._visits === undefined) return html`<div class="empty">${t(hass, "loading")}</div>`;
    if (!this._visits.length) return html`<div class="empty">${this._error ? "" : t(hass, "no_visits")}</div>`;
    const snapshots = this._config.show_snapshots ?? true;
    return html`<ol class="timeline">
      ${this._visits.map((v) => this._renderVisit(v, snapshots))}
    </ol>`;
  }

  private _renderVisit(v: VisitItem, snapshots: boolean): TemplateResult {
    const hass = this.hass;
    const d = visitDuration(v);
    const ongoing = v.ended_at == null;
    return html`<li class="visit ${v.risk?.level ?? ""}" data-visit=${v.visit_id}>
      <button class="plain visit-row" @click=${() => (this._selected = v)}>
        ${snapshots
          ? v.snapshot_url
            ? html`<img class="pic snap" src=${v.snapshot_url} alt="" loading="lazy" />`
            : html`<div class="pic snap placeholder" aria-hidden="true">?</div>`
          : nothing}
        <div class="visit-text">
          <div class="row">
            <span class="time">${v.started_at ? clockTime(hass, v.started_at) : ""}</span>
            <span class="who">${v.label ?? ""}</span>
            ${v.known ? html`<span class="badge household">${t(hass, "household")}</span>` : v.is_new_identity ? html`<span class="badge unknown">${t(hass, "new_person")}</span>` : nothing}
            ${v.risk?.level ? html`<span class="badge level ${v.risk.level}">${t(hass, `risk_${v.risk.level}`)}</span>` : nothing}
          </div>
          <div class="path muted">${pathText(hass, v)}</div>
          <div class="muted">${d != null ? durationText(hass, d) : ""}${ongoing ? ` · ${t(hass, "ongoing")}` : ""}</div>
          ${v.risk?.summary ? html`<div class="summary">${v.risk.summary}</div>` : nothing}
          ${v.risk?.reasons?.length
            ? html`<div class="reasons muted">${v.risk.reasons.filter((r) => r.points > 0).map((r) => r.text).join(" · ")}</div>`
            : nothing}
        </div>
      </button>
    </li>`;
  }

  private _renderDetail(v: VisitItem): TemplateResult {
    const hass = this.hass;
    const d = visitDuration(v);
    return html`<div class="dialog-backdrop" @click=${(e: Event) => e.target === e.currentTarget && (this._selected = undefined)}>
      <div class="dialog" role="dialog" aria-label=${v.label ?? ""}>
        <div class="row">
          <h2>${v.label ?? ""}</h2>
          ${v.risk?.level ? html`<span class="badge level ${v.risk.level}">${t(hass, `risk_${v.risk.level}`)}${v.risk.score != null ? ` ${v.risk.score}` : ""}</span>` : nothing}
          <button class="action close" @click=${() => (this._selected = undefined)}>${t(hass, "close")}</button>
        </div>
        <div class="muted">${v.started_at ? sinceText(hass, v.started_at) : ""} · ${pathText(hass, v)}${d != null ? ` · ${durationText(hass, d)}` : ""}</div>
        ${v.snapshot_url ? html`<img class="pic big" src=${v.snapshot_url} alt=${cameraName(v.last_camera)} />` : nothing}
        ${v.thumbnail_url ? html`<img class="pic crop" src=${v.thumbnail_url} alt=${v.label ?? ""} />` : nothing}
        ${v.risk?.summary ? html`<p>${v.risk.summary}</p>` : nothing}
        ${v.risk?.reasons?.length
          ? html`<ul class="reason-list">${v.risk.reasons.map((r) => html`<li>${r.text} <span class="muted">(${r.points > 0 ? "+" : ""}${r.points})</span></li>`)}</ul>`
          : nothing}
      </div>
    </div>`;
  }

  static styles = [
    shared,
    css`
      .timeline { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; }
      .visit { border-left: 3px solid var(--sr-border); padding: 6px 0 6px 10px; }
      .visit.low { border-left-color: var(--sr-low); }
      .visit.medium { border-left-color: var(--sr-medium); }
      .visit.high { border-left-color: var(--sr-high); }
      .visit.critical { border-left-color: var(--sr-critical); }
      .visit + .visit { border-top: 1px solid var(--sr-border); }
      .visit-row { display: flex; gap: 10px; align-items: flex-start; }
      .snap { width: 96px; height: 64px; border-radius: 6px; flex: none; }
      .visit-text { min-width: 0; flex: 1; display: flex; flex-direction: column; gap: 2px; }
      .time { font-variant-numeric: tabular-nums; font-weight: 500; }
      .who { font-weight: 500; }
      .summary { font-size: 14px; }
      .reasons { font-size: 12px; }
      .big { display: block; max-width: 100%; max-height: 60vh; width: auto; height: auto; margin: 8px auto 0; border-radius: 8px; object-fit: contain; }
      .crop { height: 120px; width: auto; border-radius: 6px; margin-top: 8px; }
      .reason-list { padding-left: 18px; }
    `,
  ];
}
