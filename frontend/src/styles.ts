import { css } from "lit";

// Everything follows the active theme through Home Assistant's CSS variables.
export const shared = css`
  :host {
    display: block;
    --sr-gap: 12px;
    --sr-muted: var(--secondary-text-color, #727272);
    --sr-border: var(--divider-color, rgba(127, 127, 127, 0.25));
    --sr-household: var(--success-color, #43a047);
    --sr-known: var(--info-color, #039be5);
    --sr-unknown: var(--warning-color, #ffa600);
    --sr-low: var(--success-color, #43a047);
    --sr-medium: var(--warning-color, #ffa600);
    --sr-high: var(--deep-orange-color, #ff5722);
    --sr-critical: var(--error-color, #db4437);
  }
  ha-card {
    overflow: hidden;
    height: 100%;
    box-sizing: border-box;
  }
  .header {
    display: flex;
    align-items: center;
    justify-content: space-between;
    gap: 8px;
    flex-wrap: wrap;
    padding: 12px 16px 4px;
  }
  .title {
    font-size: var(--ha-card-header-font-size, 20px);
    font-weight: 500;
    color: var(--ha-card-header-color, var(--primary-text-color));
  }
  .content {
    padding: 8px 16px 16px;
  }
  .notice {
    margin: 4px 16px 8px;
    padding: 8px 12px;
    border-radius: 8px;
    font-size: 14px;
    background: rgba(var(--rgb-warning-color, 255, 166, 0), 0.15);
    color: var(--primary-text-color);
  }
  .notice.error {
    background: rgba(var(--rgb-error-color, 219, 68, 55), 0.15);
  }
  .empty {
    color: var(--sr-muted);
    padding: 16px 0;
    text-align: center;
  }
  .chips {
    display: flex;
    gap: 6px;
    flex-wrap: wrap;
  }
  .chip {
    border: 1px solid var(--sr-border);
    background: none;
    color: var(--primary-text-color);
    border-radius: 16px;
    padding: 4px 10px;
    font: inherit;
    font-size: 13px;
    cursor: pointer;
  }
  select.chip {
    background: var(--card-background-color, #fff);
  }
  .chip[aria-pressed="true"] {
    background: var(--primary-color);
    border-color: var(--primary-color);
    color: var(--text-primary-color, #fff);
  }
  .badge {
    display: inline-block;
    font-size: 11px;
    line-height: 16px;
    padding: 0 6px;
    border-radius: 8px;
    color: #fff;
    white-space: nowrap;
  }
  .badge.household { background: var(--sr-household); }
  .badge.known { background: var(--sr-known); }
  .badge.unknown { background: var(--sr-unknown); color: #000; }
  .badge.uncertain { background: none; border: 1px dashed var(--sr-muted); color: var(--sr-muted); }
  .level { font-weight: 600; text-transform: uppercase; font-size: 11px; }
  .level.low { background: var(--sr-low); }
  .level.medium { background: var(--sr-medium); color: #000; }
  .level.high { background: var(--sr-high); }
  .level.critical { background: var(--sr-critical); }
  .muted { color: var(--sr-muted); font-size: 13px; }
  .pic {
    background: var(--secondary-background-color, rgba(127, 127, 127, 0.15));
    object-fit: cover;
    display: block;
  }
  .placeholder {
    display: flex;
    align-items: center;
    justify-content: center;
    color: var(--sr-muted);
  }
  .dialog-backdrop {
    position: fixed;
    inset: 0;
    background: rgba(0, 0, 0, 0.5);
    z-index: 10;
    display: flex;
    align-items: center;
    justify-content: center;
  }
  .dialog {
    background: var(--card-background-color, var(--ha-card-background, #fff));
    color: var(--primary-text-color);
    border-radius: var(--ha-card-border-radius, 12px);
    width: min(560px, 100vw);
    max-height: 100vh;
    overflow: auto;
    box-sizing: border-box;
    padding: 16px;
  }
  .dialog h2 { margin: 0 0 8px; font-size: 20px; font-weight: 500; }
  .row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
  .actions { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 12px; }
  button.action {
    font: inherit;
    font-size: 14px;
    border-radius: 8px;
    padding: 6px 12px;
    border: 1px solid var(--primary-color);
    background: none;
    color: var(--primary-color);
    cursor: pointer;
  }
  button.action.primary { background: var(--primary-color); color: var(--text-primary-color, #fff); }
  button.action.danger { border-color: var(--error-color, #db4437); color: var(--error-color, #db4437); }
  button.action:disabled { opacity: 0.5; cursor: default; }
  input.text {
    font: inherit;
    padding: 6px 8px;
    border-radius: 6px;
    border: 1px solid var(--sr-border);
    background: var(--card-background-color, #fff);
    color: var(--primary-text-color);
    min-width: 0;
    flex: 1;
  }
  .error-text { color: var(--error-color, #db4437); font-size: 14px; margin-top: 8px; }
  .close { margin-left: auto; }
  button.plain {
    background: none;
    border: none;
    padding: 0;
    font: inherit;
    color: inherit;
    text-align: inherit;
    cursor: pointer;
    width: 100%;
  }
`;
