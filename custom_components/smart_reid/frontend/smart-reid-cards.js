var W=globalThis,F=W.ShadowRoot&&(W.ShadyCSS===void 0||W.ShadyCSS.nativeShadow)&&"adoptedStyleSheets"in Document.prototype&&"replace"in CSSStyleSheet.prototype,te=Symbol(),ge=new WeakMap,R=class{constructor(e,t,s){if(this._$cssResult$=!0,s!==te)throw Error("CSSResult is not constructable. Use `unsafeCSS` or `css` instead.");this.cssText=e,this.t=t}get styleSheet(){let e=this.o,t=this.t;if(F&&e===void 0){let s=t!==void 0&&t.length===1;s&&(e=ge.get(t)),e===void 0&&((this.o=e=new CSSStyleSheet).replaceSync(this.cssText),s&&ge.set(t,e))}return e}toString(){return this.cssText}},ve=r=>new R(typeof r=="string"?r:r+"",void 0,te),$=(r,...e)=>{let t=r.length===1?r[0]:e.reduce((s,i,n)=>s+(o=>{if(o._$cssResult$===!0)return o.cssText;if(typeof o=="number")return o;throw Error("Value passed to 'css' function must be a 'css' function result: "+o+". Use 'unsafeCSS' to pass non-literal values, but take care to ensure page security.")})(i)+r[n+1],r[0]);return new R(t,r,te)},be=(r,e)=>{if(F)r.adoptedStyleSheets=e.map(t=>t instanceof CSSStyleSheet?t:t.styleSheet);else for(let t of e){let s=document.createElement("style"),i=W.litNonce;i!==void 0&&s.setAttribute("nonce",i),s.textContent=t.cssText,r.appendChild(s)}},se=F?r=>r:r=>r instanceof CSSStyleSheet?(e=>{let t="";for(let s of e.cssRules)t+=s.cssText;return ve(t)})(r):r;var{is:Oe,defineProperty:ze,getOwnPropertyDescriptor:je,getOwnPropertyNames:Be,getOwnPropertySymbols:Ke,getPrototypeOf:We}=Object,q=globalThis,ye=q.trustedTypes,Fe=ye?ye.emptyScript:"",qe=q.reactiveElementPolyfillSupport,H=(r,e)=>r,ie={toAttribute(r,e){switch(e){case Boolean:r=r?Fe:null;break;case Object:case Array:r=r==null?r:JSON.stringify(r)}return r},fromAttribute(r,e){let t=r;switch(e){case Boolean:t=r!==null;break;case Number:t=r===null?null:Number(r);break;case Object:case Array:try{t=JSON.parse(r)}catch{t=null}}return t}},xe=(r,e)=>!Oe(r,e),$e={attribute:!0,type:String,converter:ie,reflect:!1,useDefault:!1,hasChanged:xe};Symbol.metadata??=Symbol("metadata"),q.litPropertyMetadata??=new WeakMap;var g=class extends HTMLElement{static addInitializer(e){this._$Ei(),(this.l??=[]).push(e)}static get observedAttributes(){return this.finalize(),this._$Eh&&[...this._$Eh.keys()]}static createProperty(e,t=$e){if(t.state&&(t.attribute=!1),this._$Ei(),this.prototype.hasOwnProperty(e)&&((t=Object.create(t)).wrapped=!0),this.elementProperties.set(e,t),!t.noAccessor){let s=Symbol(),i=this.getPropertyDescriptor(e,s,t);i!==void 0&&ze(this.prototype,e,i)}}static getPropertyDescriptor(e,t,s){let{get:i,set:n}=je(this.prototype,e)??{get(){return this[t]},set(o){this[t]=o}};return{get:i,set(o){let u=i?.call(this);n?.call(this,o),this.requestUpdate(e,u,s)},configurable:!0,enumerable:!0}}static getPropertyOptions(e){return this.elementProperties.get(e)??$e}static _$Ei(){if(this.hasOwnProperty(H("elementProperties")))return;let e=We(this);e.finalize(),e.l!==void 0&&(this.l=[...e.l]),this.elementProperties=new Map(e.elementProperties)}static finalize(){if(this.hasOwnProperty(H("finalized")))return;if(this.finalized=!0,this._$Ei(),this.hasOwnProperty(H("properties"))){let t=this.properties,s=[...Be(t),...Ke(t)];for(let i of s)this.createProperty(i,t[i])}let e=this[Symbol.metadata];if(e!==null){let t=litPropertyMetadata.get(e);if(t!==void 0)for(let[s,i]of t)this.elementProperties.set(s,i)}this._$Eh=new Map;for(let[t,s]of this.elementProperties){let i=this._$Eu(t,s);i!==void 0&&this._$Eh.set(i,t)}this.elementStyles=this.finalizeStyles(this.styles)}static finalizeStyles(e){let t=[];if(Array.isArray(e)){let s=new Set(e.flat(1/0).reverse());for(let i of s)t.unshift(se(i))}else e!==void 0&&t.push(se(e));return t}static _$Eu(e,t){let s=t.attribute;return s===!1?void 0:typeof s=="string"?s:typeof e=="string"?e.toLowerCase():void 0}constructor(){super(),this._$Ep=void 0,this.isUpdatePending=!1,this.hasUpdated=!1,this._$Em=null,this._$Ev()}_$Ev(){this._$ES=new Promise(e=>this.enableUpdating=e),this._$AL=new Map,this._$E_(),this.requestUpdate(),this.constructor.l?.forEach(e=>e(this))}addController(e){(this._$EO??=new Set).add(e),this.renderRoot!==void 0&&this.isConnected&&e.hostConnected?.()}removeController(e){this._$EO?.delete(e)}_$E_(){let e=new Map,t=this.constructor.elementProperties;for(let s of t.keys())this.hasOwnProperty(s)&&(e.set(s,this[s]),delete this[s]);e.size>0&&(this._$Ep=e)}createRenderRoot(){let e=this.shadowRoot??this.attachShadow(this.constructor.shadowRootOptions);return be(e,this.constructor.elementStyles),e}connectedCallback(){this.renderRoot??=this.createRenderRoot(),this.enableUpdating(!0),this._$EO?.forEach(e=>e.hostConnected?.())}enableUpdating(e){}disconnectedCallback(){this._$EO?.forEach(e=>e.hostDisconnected?.())}attributeChangedCallback(e,t,s){this._$AK(e,s)}_$ET(e,t){let s=this.constructor.elementProperties.get(e),i=this.constructor._$Eu(e,s);if(i!==void 0&&s.reflect===!0){let n=(s.converter?.toAttribute!==void 0?s.converter:ie).toAttribute(t,s.type);this._$Em=e,n==null?this.removeAttribute(i):this.setAttribute(i,n),this._$Em=null}}_$AK(e,t){let s=this.constructor,i=s._$Eh.get(e);if(i!==void 0&&this._$Em!==i){let n=s.getPropertyOptions(i),o=typeof n.converter=="function"?{fromAttribute:n.converter}:n.converter?.fromAttribute!==void 0?n.converter:ie;this._$Em=i;let u=o.fromAttribute(t,n.type);this[i]=u??this._$Ej?.get(i)??u,this._$Em=null}}requestUpdate(e,t,s,i=!1,n){if(e!==void 0){let o=this.constructor;if(i===!1&&(n=this[e]),s??=o.getPropertyOptions(e),!((s.hasChanged??xe)(n,t)||s.useDefault&&s.reflect&&n===this._$Ej?.get(e)&&!this.hasAttribute(o._$Eu(e,s))))return;this.C(e,t,s)}this.isUpdatePending===!1&&(this._$ES=this._$EP())}C(e,t,{useDefault:s,reflect:i,wrapped:n},o){s&&!(this._$Ej??=new Map).has(e)&&(this._$Ej.set(e,o??t??this[e]),n!==!0||o!==void 0)||(this._$AL.has(e)||(this.hasUpdated||s||(t=void 0),this._$AL.set(e,t)),i===!0&&this._$Em!==e&&(this._$Eq??=new Set).add(e))}async _$EP(){this.isUpdatePending=!0;try{await this._$ES}catch(t){Promise.reject(t)}let e=this.scheduleUpdate();return e!=null&&await e,!this.isUpdatePending}scheduleUpdate(){return this.performUpdate()}performUpdate(){if(!this.isUpdatePending)return;if(!this.hasUpdated){if(this.renderRoot??=this.createRenderRoot(),this._$Ep){for(let[i,n]of this._$Ep)this[i]=n;this._$Ep=void 0}let s=this.constructor.elementProperties;if(s.size>0)for(let[i,n]of s){let{wrapped:o}=n,u=this[i];o!==!0||this._$AL.has(i)||u===void 0||this.C(i,void 0,n,u)}}let e=!1,t=this._$AL;try{e=this.shouldUpdate(t),e?(this.willUpdate(t),this._$EO?.forEach(s=>s.hostUpdate?.()),this.update(t)):this._$EM()}catch(s){throw e=!1,this._$EM(),s}e&&this._$AE(t)}willUpdate(e){}_$AE(e){this._$EO?.forEach(t=>t.hostUpdated?.()),this.hasUpdated||(this.hasUpdated=!0,this.firstUpdated(e)),this.updated(e)}_$EM(){this._$AL=new Map,this.isUpdatePending=!1}get updateComplete(){return this.getUpdateComplete()}getUpdateComplete(){return this._$ES}shouldUpdate(e){return!0}update(e){this._$Eq&&=this._$Eq.forEach(t=>this._$ET(t,this[t])),this._$EM()}updated(e){}firstUpdated(e){}};g.elementStyles=[],g.shadowRootOptions={mode:"open"},g[H("elementProperties")]=new Map,g[H("finalized")]=new Map,qe?.({ReactiveElement:g}),(q.reactiveElementVersions??=[]).push("2.1.2");var ce=globalThis,we=r=>r,G=ce.trustedTypes,ke=G?G.createPolicy("lit-html",{createHTML:r=>r}):void 0,Te="$lit$",y=`lit$${Math.random().toFixed(9).slice(2)}$`,Re="?"+y,Ge=`<${Re}>`,k=document,L=()=>k.createComment(""),N=r=>r===null||typeof r!="object"&&typeof r!="function",he=Array.isArray,Ze=r=>he(r)||typeof r?.[Symbol.iterator]=="function",re=`[ 	
\f\r]`,I=/<(?:(!--|\/[^a-zA-Z])|(\/?[a-zA-Z][^>\s]*)|(\/?$))/g,Ae=/-->/g,Se=/>/g,x=RegExp(`>|${re}(?:([^\\s"'>=/]+)(${re}*=${re}*(?:[^ 	
\f\r"'\`<>=]|("|')|))|$)`,"g"),Ee=/'/g,Ce=/"/g,He=/^(?:script|style|textarea|title)$/i,pe=r=>(e,...t)=>({_$litType$:r,strings:e,values:t}),d=pe(1),ct=pe(2),ht=pe(3),A=Symbol.for("lit-noChange"),c=Symbol.for("lit-nothing"),Pe=new WeakMap,w=k.createTreeWalker(k,129);function Ie(r,e){if(!he(r)||!r.hasOwnProperty("raw"))throw Error("invalid template strings array");return ke!==void 0?ke.createHTML(e):e}var Je=(r,e)=>{let t=r.length-1,s=[],i,n=e===2?"<svg>":e===3?"<math>":"",o=I;for(let u=0;u<t;u++){let l=r[u],h,m,p=-1,f=0;for(;f<l.length&&(o.lastIndex=f,m=o.exec(l),m!==null);)f=o.lastIndex,o===I?m[1]==="!--"?o=Ae:m[1]!==void 0?o=Se:m[2]!==void 0?(He.test(m[2])&&(i=RegExp("</"+m[2],"g")),o=x):m[3]!==void 0&&(o=x):o===x?m[0]===">"?(o=i??I,p=-1):m[1]===void 0?p=-2:(p=o.lastIndex-m[2].length,h=m[1],o=m[3]===void 0?x:m[3]==='"'?Ce:Ee):o===Ce||o===Ee?o=x:o===Ae||o===Se?o=I:(o=x,i=void 0);let b=o===x&&r[u+1].startsWith("/>")?" ":"";n+=o===I?l+Ge:p>=0?(s.push(h),l.slice(0,p)+Te+l.slice(p)+y+b):l+y+(p===-2?u:b)}return[Ie(r,n+(r[t]||"<?>")+(e===2?"</svg>":e===3?"</math>":"")),s]},D=class r{constructor({strings:e,_$litType$:t},s){let i;this.parts=[];let n=0,o=0,u=e.length-1,l=this.parts,[h,m]=Je(e,t);if(this.el=r.createElement(h,s),w.currentNode=this.el.content,t===2||t===3){let p=this.el.content.firstChild;p.replaceWith(...p.childNodes)}for(;(i=w.nextNode())!==null&&l.length<u;){if(i.nodeType===1){if(i.hasAttributes())for(let p of i.getAttributeNames())if(p.endsWith(Te)){let f=m[o++],b=i.getAttribute(p).split(y),K=/([.?@])?(.*)/.exec(f);l.push({type:1,index:n,name:K[2],strings:b,ctor:K[1]==="."?oe:K[1]==="?"?ae:K[1]==="@"?le:C}),i.removeAttribute(p)}else p.startsWith(y)&&(l.push({type:6,index:n}),i.removeAttribute(p));if(He.test(i.tagName)){let p=i.textContent.split(y),f=p.length-1;if(f>0){i.textContent=G?G.emptyScript:"";for(let b=0;b<f;b++)i.append(p[b],L()),w.nextNode(),l.push({type:2,index:++n});i.append(p[f],L())}}}else if(i.nodeType===8)if(i.data===Re)l.push({type:2,index:n});else{let p=-1;for(;(p=i.data.indexOf(y,p+1))!==-1;)l.push({type:7,index:n}),p+=y.length-1}n++}}static createElement(e,t){let s=k.createElement("template");return s.innerHTML=e,s}};function E(r,e,t=r,s){if(e===A)return e;let i=s!==void 0?t._$Co?.[s]:t._$Cl,n=N(e)?void 0:e._$litDirective$;return i?.constructor!==n&&(i?._$AO?.(!1),n===void 0?i=void 0:(i=new n(r),i._$AT(r,t,s)),s!==void 0?(t._$Co??=[])[s]=i:t._$Cl=i),i!==void 0&&(e=E(r,i._$AS(r,e.values),i,s)),e}var ne=class{constructor(e,t){this._$AV=[],this._$AN=void 0,this._$AD=e,this._$AM=t}get parentNode(){return this._$AM.parentNode}get _$AU(){return this._$AM._$AU}u(e){let{el:{content:t},parts:s}=this._$AD,i=(e?.creationScope??k).importNode(t,!0);w.currentNode=i;let n=w.nextNode(),o=0,u=0,l=s[0];for(;l!==void 0;){if(o===l.index){let h;l.type===2?h=new M(n,n.nextSibling,this,e):l.type===1?h=new l.ctor(n,l.name,l.strings,this,e):l.type===6&&(h=new de(n,this,e)),this._$AV.push(h),l=s[++u]}o!==l?.index&&(n=w.nextNode(),o++)}return w.currentNode=k,i}p(e){let t=0;for(let s of this._$AV)s!==void 0&&(s.strings!==void 0?(s._$AI(e,s,t),t+=s.strings.length-2):s._$AI(e[t])),t++}},M=class r{get _$AU(){return this._$AM?._$AU??this._$Cv}constructor(e,t,s,i){this.type=2,this._$AH=c,this._$AN=void 0,this._$AA=e,this._$AB=t,this._$AM=s,this.options=i,this._$Cv=i?.isConnected??!0}get parentNode(){let e=this._$AA.parentNode,t=this._$AM;return t!==void 0&&e?.nodeType===11&&(e=t.parentNode),e}get startNode(){return this._$AA}get endNode(){return this._$AB}_$AI(e,t=this){e=E(this,e,t),N(e)?e===c||e==null||e===""?(this._$AH!==c&&this._$AR(),this._$AH=c):e!==this._$AH&&e!==A&&this._(e):e._$litType$!==void 0?this.$(e):e.nodeType!==void 0?this.T(e):Ze(e)?this.k(e):this._(e)}O(e){return this._$AA.parentNode.insertBefore(e,this._$AB)}T(e){this._$AH!==e&&(this._$AR(),this._$AH=this.O(e))}_(e){this._$AH!==c&&N(this._$AH)?this._$AA.nextSibling.data=e:this.T(k.createTextNode(e)),this._$AH=e}$(e){let{values:t,_$litType$:s}=e,i=typeof s=="number"?this._$AC(e):(s.el===void 0&&(s.el=D.createElement(Ie(s.h,s.h[0]),this.options)),s);if(this._$AH?._$AD===i)this._$AH.p(t);else{let n=new ne(i,this),o=n.u(this.options);n.p(t),this.T(o),this._$AH=n}}_$AC(e){let t=Pe.get(e.strings);return t===void 0&&Pe.set(e.strings,t=new D(e)),t}k(e){he(this._$AH)||(this._$AH=[],this._$AR());let t=this._$AH,s,i=0;for(let n of e)i===t.length?t.push(s=new r(this.O(L()),this.O(L()),this,this.options)):s=t[i],s._$AI(n),i++;i<t.length&&(this._$AR(s&&s._$AB.nextSibling,i),t.length=i)}_$AR(e=this._$AA.nextSibling,t){for(this._$AP?.(!1,!0,t);e!==this._$AB;){let s=we(e).nextSibling;we(e).remove(),e=s}}setConnected(e){this._$AM===void 0&&(this._$Cv=e,this._$AP?.(e))}},C=class{get tagName(){return this.element.tagName}get _$AU(){return this._$AM._$AU}constructor(e,t,s,i,n){this.type=1,this._$AH=c,this._$AN=void 0,this.element=e,this.name=t,this._$AM=i,this.options=n,s.length>2||s[0]!==""||s[1]!==""?(this._$AH=Array(s.length-1).fill(new String),this.strings=s):this._$AH=c}_$AI(e,t=this,s,i){let n=this.strings,o=!1;if(n===void 0)e=E(this,e,t,0),o=!N(e)||e!==this._$AH&&e!==A,o&&(this._$AH=e);else{let u=e,l,h;for(e=n[0],l=0;l<n.length-1;l++)h=E(this,u[s+l],t,l),h===A&&(h=this._$AH[l]),o||=!N(h)||h!==this._$AH[l],h===c?e=c:e!==c&&(e+=(h??"")+n[l+1]),this._$AH[l]=h}o&&!i&&this.j(e)}j(e){e===c?this.element.removeAttribute(this.name):this.element.setAttribute(this.name,e??"")}},oe=class extends C{constructor(){super(...arguments),this.type=3}j(e){this.element[this.name]=e===c?void 0:e}},ae=class extends C{constructor(){super(...arguments),this.type=4}j(e){this.element.toggleAttribute(this.name,!!e&&e!==c)}},le=class extends C{constructor(e,t,s,i,n){super(e,t,s,i,n),this.type=5}_$AI(e,t=this){if((e=E(this,e,t,0)??c)===A)return;let s=this._$AH,i=e===c&&s!==c||e.capture!==s.capture||e.once!==s.once||e.passive!==s.passive,n=e!==c&&(s===c||i);i&&this.element.removeEventListener(this.name,this,s),n&&this.element.addEventListener(this.name,this,e),this._$AH=e}handleEvent(e){typeof this._$AH=="function"?this._$AH.call(this.options?.host??this.element,e):this._$AH.handleEvent(e)}},de=class{constructor(e,t,s){this.element=e,this.type=6,this._$AN=void 0,this._$AM=t,this.options=s}get _$AU(){return this._$AM._$AU}_$AI(e){E(this,e)}};var Xe=ce.litHtmlPolyfillSupport;Xe?.(D,M),(ce.litHtmlVersions??=[]).push("3.3.3");var Le=(r,e,t)=>{let s=t?.renderBefore??e,i=s._$litPart$;if(i===void 0){let n=t?.renderBefore??null;s._$litPart$=i=new M(e.insertBefore(L(),n),n,void 0,t??{})}return i._$AI(r),i};var ue=globalThis,_=class extends g{constructor(){super(...arguments),this.renderOptions={host:this},this._$Do=void 0}createRenderRoot(){let e=super.createRenderRoot();return this.renderOptions.renderBefore??=e.firstChild,e}update(e){let t=this.render();this.hasUpdated||(this.renderOptions.isConnected=this.isConnected),super.update(e),this._$Do=Le(t,this.renderRoot,this.renderOptions)}connectedCallback(){super.connectedCallback(),this._$Do?.setConnected(!0)}disconnectedCallback(){super.disconnectedCallback(),this._$Do?.setConnected(!1)}render(){return A}};_._$litElement$=!0,_.finalized=!0,ue.litElementHydrateSupport?.({LitElement:_});var Ye=ue.litElementPolyfillSupport;Ye?.({LitElement:_});(ue.litElementVersions??=[]).push("4.2.2");var Z={people_title:"People",visits_title:"Visits",household:"Household",known:"Known",unknown:"Unknown",probably:"probably {label}",here_now:"{camera} \xB7 now",last_seen:"{camera} \xB7 {when}",never_seen:"not seen yet",visits_today:"{n} visits today",visit_today:"1 visit today",no_visits_today:"no visits today",filter_everyone:"Everyone",filter_present:"Here now",filter_unknown:"Unknown only",sort_recent:"Recent first",sort_name:"By name",sort_visits:"Most visits",nobody:"Nobody seen yet. People appear here when a camera sees them.",nobody_filtered:"Nobody matches this filter.",no_visits:"Nothing happened in this period.",offline:"The Smart ReID server is offline: showing what was last known.",not_loaded:"Smart ReID is not set up: add the integration under Settings > Devices & services.",error:"Cannot load: {message}",loading:"Loading\u2026",close:"Close",rename:"Rename",name:"Name",save:"Save",mark_household:"Mark as household",unmark_household:"Not household",merge:"Merge with\u2026",merge_pick:"Who is this person really? Their visits and pictures join the one you pick.",merge_confirm:"Merge {from} into {into}?",forget:"Forget",forget_confirm:"Forget {label}? Their pictures and visits are deleted. This cannot be undone.",confirm:"Yes",cancel:"Cancel",done:"Done",recent_pictures:"Recent pictures",visit_history:"Visits",actions_admin_only:"Only administrators can change people.",ongoing:"still here",duration:"{d}",risk_low:"low",risk_medium:"medium",risk_high:"high",risk_critical:"critical",new_person:"first visit",period_today:"Today",period_24h:"Last 24 hours",period_7d:"Last 7 days",layout_grid:"Grid",layout_compact:"Compact",opt_title:"Title",opt_filter:"Show",opt_sort:"Order",opt_layout:"Layout",opt_hours:"Recently seen (hours)",opt_max_people:"At most this many people",opt_period:"Period",opt_min_level:"Lowest risk level shown",opt_limit:"At most this many visits",opt_show_snapshots:"Show snapshots",opt_entry_id:"Server (config entry id, when there are several)",any_level:"any",people_card_desc:"Who is here and who was seen recently, with pictures.",visits_card_desc:"Today's visits across cameras, with risk levels, live.",seconds:"{n} s",minutes:"{n} min",hours:"{n} h {m} min",just_now:"just now",min_ago:"{n} min ago",hours_ago:"{n} h ago",yesterday:"yesterday {time}"},Qe={people_title:"Personen",visits_title:"Besuche",household:"Haushalt",known:"Bekannt",unknown:"Unbekannt",probably:"vermutlich {label}",here_now:"{camera} \xB7 jetzt",last_seen:"{camera} \xB7 {when}",never_seen:"noch nicht gesehen",visits_today:"{n} Besuche heute",visit_today:"1 Besuch heute",no_visits_today:"heute kein Besuch",filter_everyone:"Alle",filter_present:"Jetzt da",filter_unknown:"Nur Unbekannte",sort_recent:"Zuletzt gesehen",sort_name:"Nach Name",sort_visits:"Meiste Besuche",nobody:"Noch niemand gesehen. Personen erscheinen hier, sobald eine Kamera sie sieht.",nobody_filtered:"Niemand passt zu diesem Filter.",no_visits:"In diesem Zeitraum ist nichts passiert.",offline:"Der Smart-ReID-Server ist offline: angezeigt wird der letzte bekannte Stand.",not_loaded:"Smart ReID ist nicht eingerichtet: Integration unter Einstellungen > Ger\xE4te & Dienste hinzuf\xFCgen.",error:"Laden nicht m\xF6glich: {message}",loading:"L\xE4dt\u2026",close:"Schlie\xDFen",rename:"Umbenennen",name:"Name",save:"Speichern",mark_household:"Zum Haushalt",unmark_household:"Nicht Haushalt",merge:"Zusammenf\xFChren mit\u2026",merge_pick:"Wer ist diese Person wirklich? Besuche und Bilder gehen an die gew\xE4hlte Person.",merge_confirm:"{from} mit {into} zusammenf\xFChren?",forget:"Vergessen",forget_confirm:"{label} vergessen? Bilder und Besuche werden gel\xF6scht. Das l\xE4sst sich nicht r\xFCckg\xE4ngig machen.",confirm:"Ja",cancel:"Abbrechen",done:"Erledigt",recent_pictures:"Neueste Bilder",visit_history:"Besuche",actions_admin_only:"Nur Administratoren k\xF6nnen Personen \xE4ndern.",ongoing:"noch da",duration:"{d}",risk_low:"niedrig",risk_medium:"mittel",risk_high:"hoch",risk_critical:"kritisch",new_person:"erster Besuch",period_today:"Heute",period_24h:"Letzte 24 Stunden",period_7d:"Letzte 7 Tage",layout_grid:"Raster",layout_compact:"Kompakt",opt_title:"Titel",opt_filter:"Anzeigen",opt_sort:"Reihenfolge",opt_layout:"Layout",opt_hours:"K\xFCrzlich gesehen (Stunden)",opt_max_people:"H\xF6chstens so viele Personen",opt_period:"Zeitraum",opt_min_level:"Niedrigste angezeigte Risikostufe",opt_limit:"H\xF6chstens so viele Besuche",opt_show_snapshots:"Schnappsch\xFCsse zeigen",opt_entry_id:"Server (Konfigurationseintrag, falls mehrere)",any_level:"alle",people_card_desc:"Wer ist da, wer wurde k\xFCrzlich gesehen \u2013 mit Bildern.",visits_card_desc:"Die heutigen Besuche \xFCber alle Kameras, mit Risikostufe, live.",seconds:"{n} s",minutes:"{n} min",hours:"{n} h {m} min",just_now:"gerade eben",min_ago:"vor {n} min",hours_ago:"vor {n} h",yesterday:"gestern {time}"},Ne={en:Z,de:Qe};function J(r){return(r?.locale?.language||r?.language||"en").split("-")[0].toLowerCase()}function a(r,e,t={}){return((Ne[J(r)]??Z)[e]??Z[e]).replace(/\{(\w+)\}/g,(n,o)=>o in t?String(t[o]):`{${o}}`)}var kt=Object.keys(Ne),At=Object.keys(Z);var De=["low","medium","high","critical"];function v(r){if(!r)return"";let e=r.replace(/_/g," ");return e.charAt(0).toUpperCase()+e.slice(1)}function S(r,e){let t=r?.locale?.time_format,s={hour:"2-digit",minute:"2-digit"};(t==="12"||t==="24")&&(s.hour12=t==="12");let i=t==="system"?void 0:J(r);return new Date(e*1e3).toLocaleTimeString(i,s)}function U(r,e,t=Date.now()/1e3){let s=Math.max(0,t-e);if(s<60)return a(r,"just_now");if(s<3600)return a(r,"min_ago",{n:Math.floor(s/60)});let i=new Date(e*1e3),n=new Date(t*1e3);if(i.toDateString()===n.toDateString())return a(r,"hours_ago",{n:Math.floor(s/3600)});let o=new Date(n);return o.setDate(n.getDate()-1),i.toDateString()===o.toDateString()?a(r,"yesterday",{time:S(r,e)}):i.toLocaleDateString(J(r),{day:"numeric",month:"short"})+" "+S(r,e)}function V(r,e){let t=Math.max(0,Math.round(e));return t<60?a(r,"seconds",{n:t}):t<3600?a(r,"minutes",{n:Math.round(t/60)}):a(r,"hours",{n:Math.floor(t/3600),m:Math.round(t%3600/60)})}function O(r,e){return(e.path.length?e.path:e.cameras.map(s=>({camera:s,at:null}))).map(s=>s.at?`${v(s.camera)} ${S(r,s.at)}`:v(s.camera)).join(" \u2192 ")}function z(r,e=Date.now()/1e3){if(r.started_at==null)return null;let t=r.ended_at??r.last_seen??e;return Math.max(0,t-r.started_at)}function me(r,e,t=Date.now()/1e3){let s=e.hours??24,n=r.filter(l=>l.present||l.status!=="unknown"||l.last_seen!=null&&t-l.last_seen<=s*3600).filter(l=>e.filter==="present"?l.present:e.filter==="unknown"?l.status==="unknown":!0),o=(l,h)=>Number(h.present)-Number(l.present)||(h.last_seen??0)-(l.last_seen??0),u=[...n].sort((l,h)=>e.sort==="name"?l.label.localeCompare(h.label,void 0,{numeric:!0}):e.sort==="visits"&&(h.visits_today-l.visits_today||h.visit_count-l.visit_count)||o(l,h));return e.max?u.slice(0,e.max):u}function _e(r,e,t){let s=r.filter(l=>l.visit_id!==e.visit_id),i=r.find(l=>l.visit_id===e.visit_id),n=i?{...i,...Object.fromEntries(Object.entries(e).filter(([,l])=>l!=null)),path:e.path.length>=i.path.length?e.path:i.path}:e;return(n.ended_at??Number.POSITIVE_INFINITY)<t.start||t.minLevel&&!et(n.risk?.level??null,t.minLevel)?s:[...s,n].sort((l,h)=>(h.started_at??0)-(l.started_at??0)).slice(0,t.limit)}function et(r,e){return r!=null&&De.indexOf(r)>=De.indexOf(e)}function fe(r,e=new Date){if(r==="24h")return e.getTime()/1e3-86400;if(r==="7d")return e.getTime()/1e3-7*86400;let t=new Date(e);return t.setHours(0,0,0,0),t.getTime()/1e3}var X=$`
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
`;var P=class extends _{constructor(){super(),this._config={type:"custom:smart-reid-people-card"},this._filter="everyone",this._sort="recent",this._mode="view",this._busy=!1}static getStubConfig(){return{type:"custom:smart-reid-people-card",filter:"everyone",sort:"recent",layout:"grid"}}static async getConfigElement(){return document.createElement("smart-reid-people-card-editor")}setConfig(e){if(!e||typeof e!="object")throw new Error("Invalid configuration");if(e.filter&&!["everyone","present","unknown"].includes(e.filter))throw new Error(`filter must be everyone, present or unknown (not ${e.filter})`);if(e.layout&&!["grid","compact"].includes(e.layout))throw new Error(`layout must be grid or compact (not ${e.layout})`);this._config=e,this._filter=e.filter??"everyone",this._sort=e.sort??"recent",this._resubscribe()}getCardSize(){return this._config.layout==="compact"?4:5}getGridOptions(){return{columns:12,min_columns:6,rows:this._config.layout==="compact"?4:5,min_rows:3}}connectedCallback(){super.connectedCallback(),this.hass&&this._subscribe()}disconnectedCallback(){super.disconnectedCallback(),this._unsubscribeNow()}willUpdate(e){e.has("hass")&&this.hass&&this.hass!==this._subscribedHass&&!this._unsubscribe&&this._subscribe()}_resubscribe(){this._unsubscribeNow(),this.hass&&this.isConnected&&this._subscribe()}_unsubscribeNow(){let e=this._unsubscribe;this._unsubscribe=void 0,this._subscribedHass=void 0,e?.then(t=>t()).catch(()=>{})}_subscribe(){if(!this.hass)return;this._subscribedHass=this.hass;let e={type:"smart_reid/people/subscribe",hours:this._config.hours??24};this._config.entry_id&&(e.entry_id=this._config.entry_id),this._unsubscribe=this.hass.connection.subscribeMessage(t=>{this._data=t,this._error=void 0,this._selected&&(this._selected=t.people.find(s=>s.person_id===this._selected?.person_id)??this._selected)},e),this._unsubscribe.catch(t=>{this._unsubscribe=void 0,this._error=t.code==="not_loaded"?a(this.hass,"not_loaded"):a(this.hass,"error",{message:t.message??String(t)})})}render(){let e=this.hass,t=this._data?.servers.some(s=>!s.online);return d`
      <ha-card>
        <div class="header">
          <div class="title">${this._config.title??a(e,"people_title")}</div>
          <div class="chips" role="group">
            ${["everyone","present","unknown"].map(s=>d`<button class="chip" aria-pressed=${this._filter===s?"true":"false"}
                @click=${()=>this._filter=s}>${a(e,`filter_${s}`)}</button>`)}
            <select class="chip sort" aria-label=${a(e,"opt_sort")}
              @change=${s=>this._sort=s.target.value}>
              ${["recent","name","visits"].map(s=>d`<option value=${s} ?selected=${this._sort===s}>${a(e,`sort_${s}`)}</option>`)}
            </select>
          </div>
        </div>
        ${t?d`<div class="notice offline">${a(e,"offline")}</div>`:c}
        ${this._error?d`<div class="notice error">${this._error}</div>`:c}
        <div class="content">${this._renderPeople()}</div>
        ${this._selected?this._renderDetail(this._selected):c}
      </ha-card>
    `}_renderPeople(){let e=this.hass;if(!this._data)return d`<div class="empty">${this._error?"":a(e,"loading")}</div>`;let t=me(this._data.people,{filter:this._filter,sort:this._sort,hours:this._config.hours,max:this._config.max_people});if(!t.length){let i=me(this._data.people,{hours:this._config.hours});return d`<div class="empty">${a(e,i.length?"nobody_filtered":"nobody")}</div>`}let s=this._config.layout==="compact";return d`<div class=${s?"list":"grid"}>
      ${t.map(i=>this._renderPerson(i,s))}
    </div>`}_badges(e){let t=this.hass;return d`<span class="badge ${e.status}">${a(t,e.status)}</span>${e.uncertain?d` <span class="badge uncertain">${a(t,"probably",{label:e.label})}</span>`:c}`}_where(e){let t=this.hass;if(e.present&&e.camera)return a(t,"here_now",{camera:v(e.camera)});if(e.last_seen==null)return a(t,"never_seen");let s=v(e.camera??e.cameras[e.cameras.length-1]??"");return a(t,"last_seen",{camera:s,when:U(t,e.last_seen)}).replace(/^ · /,"")}_visitsToday(e){return e.visits_today===0?a(this.hass,"no_visits_today"):e.visits_today===1?a(this.hass,"visit_today"):a(this.hass,"visits_today",{n:e.visits_today})}_picture(e,t){return e.thumbnail_url?d`<img class="pic" style="width:${t};height:calc(${t} * 2)" src=${e.thumbnail_url} alt=${e.label??""} loading="lazy" />`:d`<div class="pic placeholder" style="width:${t};height:calc(${t} * 2)" aria-hidden="true">?</div>`}_renderPerson(e,t){let s=()=>this._open(e);return t?d`<button class="plain person row-item" data-person=${e.person_id} @click=${s}>
        ${this._picture(e,"28px")}
        <div class="person-text">
          <div class="name">${e.label} ${this._badges(e)}</div>
          <div class="muted">${this._where(e)} · ${this._visitsToday(e)}</div>
        </div>
        ${e.present?d`<span class="dot" title="present"></span>`:c}
      </button>`:d`<button class="plain person tile ${e.present?"present":""}" data-person=${e.person_id} @click=${s}>
      <div class="tile-pic">${this._picture(e,"100%")}</div>
      <div class="name">${e.label}</div>
      <div>${this._badges(e)}</div>
      <div class="muted">${this._where(e)}</div>
      <div class="muted">${this._visitsToday(e)}</div>
    </button>`}async _open(e){if(this._selected=e,this._mode="view",this._actionError=void 0,this._history=void 0,this._mergeWith=void 0,!!this.hass)try{let t=await this.hass.callWS({type:"smart_reid/visits",entry_id:e.entry_id,person_id:e.person_id,start:Date.now()/1e3-604800,limit:20});this._selected?.person_id===e.person_id&&(this._history=t.visits)}catch{this._selected?.person_id===e.person_id&&(this._history=[])}}_close(){this._selected=void 0}async _call(e,t,s=!1){if(!(!this.hass||!this._selected)){this._busy=!0,this._actionError=void 0;try{await this.hass.callService("smart_reid",e,{config_entry_id:this._selected.entry_id,...t}),this._mode="view",s&&this._close()}catch(i){this._actionError=i.message??String(i)}finally{this._busy=!1}}}_renderDetail(e){let t=this.hass,s=t?.user?.is_admin??!1,i=tt(this._history??[]);return d`<div class="dialog-backdrop" @click=${n=>n.target===n.currentTarget&&this._close()}>
      <div class="dialog" role="dialog" aria-label=${e.label}>
        <div class="row">
          ${this._picture(e,"48px")}
          <div>
            <h2>${e.label}</h2>
            <div>${this._badges(e)}</div>
            <div class="muted">${this._where(e)} · ${this._visitsToday(e)}</div>
          </div>
          <button class="action close" @click=${this._close}>${a(t,"close")}</button>
        </div>
        ${i.length?d`<h3>${a(t,"recent_pictures")}</h3>
              <div class="shots">
                ${i.map(n=>d`<figure>
                    <img class="pic" src=${n.snapshot_url??""} alt=${v(n.last_camera)} loading="lazy" />
                    <figcaption class="muted">${v(n.last_camera??n.first_camera)}
                      ${n.started_at?S(t,n.started_at):""}</figcaption>
                  </figure>`)}
              </div>`:c}
        <h3>${a(t,"visit_history")}</h3>
        ${this._history===void 0?d`<div class="muted">${a(t,"loading")}</div>`:this._history.length?d`<ul class="history">
                ${this._history.map(n=>{let o=z(n);return d`<li>
                    <span>${n.started_at?U(t,n.started_at):""}</span>
                    <span class="muted">${O(t,n)}${o!=null?` \xB7 ${V(t,o)}`:""}</span>
                    ${n.risk?.level?d`<span class="badge level ${n.risk.level}">${a(t,`risk_${n.risk.level}`)}</span>`:c}
                  </li>`})}
              </ul>`:d`<div class="muted">${a(t,"no_visits")}</div>`}
        ${s?this._renderActions(e):d`<div class="muted">${a(t,"actions_admin_only")}</div>`}
        ${this._actionError?d`<div class="error-text" role="alert">${this._actionError}</div>`:c}
      </div>
    </div>`}_renderActions(e){let t=this.hass,s=this._busy;if(this._mode==="rename")return d`<form class="actions" @submit=${i=>{i.preventDefault();let o=this.renderRoot.querySelector("input.rename")?.value.trim()??"";o&&this._call("rename_person",{person_id:e.person_id,name:o})}}>
        <input class="text rename" aria-label=${a(t,"name")} .value=${e.label} maxlength="64" />
        <button class="action primary" type="submit" ?disabled=${s}>${a(t,"save")}</button>
        <button class="action" type="button" @click=${()=>this._mode="view"}>${a(t,"cancel")}</button>
      </form>`;if(this._mode==="forget")return d`<div class="actions">
        <div>${a(t,"forget_confirm",{label:e.label})}</div>
        <button class="action danger confirm-forget" ?disabled=${s}
          @click=${()=>this._call("forget_person",{person_id:e.person_id},!0)}>${a(t,"confirm")}</button>
        <button class="action" @click=${()=>this._mode="view"}>${a(t,"cancel")}</button>
      </div>`;if(this._mode==="merge"){let i=(this._data?.people??[]).filter(o=>o.person_id!==e.person_id&&o.entry_id===e.entry_id),n=this._mergeWith;return d`<div>
        <div class="muted">${a(t,"merge_pick")}</div>
        <div class="picker">
          ${i.map(o=>d`<button class="plain pick ${n?.person_id===o.person_id?"chosen":""}"
              data-person=${o.person_id} @click=${()=>this._mergeWith=o}>
              ${this._picture(o,"40px")}<span>${o.label}</span></button>`)}
        </div>
        <div class="actions">
          ${n?d`<span>${a(t,"merge_confirm",{from:e.label,into:n.label})}</span>
                <button class="action primary confirm-merge" ?disabled=${s}
                  @click=${()=>this._call("merge_persons",{person_id:n.person_id,from_person_id:e.person_id},!0)}>
                  ${a(t,"confirm")}</button>`:c}
          <button class="action" @click=${()=>this._mode="view"}>${a(t,"cancel")}</button>
        </div>
      </div>`}return d`<div class="actions">
      <button class="action rename" @click=${()=>this._mode="rename"}>${a(t,"rename")}</button>
      <button class="action household" ?disabled=${s}
        @click=${()=>this._call("mark_known",{person_id:e.person_id,known:!e.known})}>
        ${a(t,e.known?"unmark_household":"mark_household")}</button>
      <button class="action merge" @click=${()=>(this._mode="merge",this._mergeWith=void 0)}>${a(t,"merge")}</button>
      <button class="action danger forget" @click=${()=>this._mode="forget"}>${a(t,"forget")}</button>
    </div>`}};P.properties={hass:{attribute:!1},_config:{state:!0},_data:{state:!0},_error:{state:!0},_filter:{state:!0},_sort:{state:!0},_selected:{state:!0},_history:{state:!0},_mode:{state:!0},_busy:{state:!0},_actionError:{state:!0},_mergeWith:{state:!0}},P.styles=[X,$`
      .grid {
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(104px, 1fr));
        gap: var(--sr-gap);
      }
      .tile {
        display: flex;
        flex-direction: column;
        gap: 2px;
        border-radius: 10px;
        padding: 6px;
        border: 1px solid var(--sr-border);
        box-sizing: border-box;
        min-width: 0;
      }
      .tile.present { border-color: var(--primary-color); }
      .tile-pic { width: 100%; aspect-ratio: 1 / 2; max-height: 180px; overflow: hidden; border-radius: 6px; }
      .tile-pic .pic { height: 100% !important; }
      .tile .name, .person-text .name {
        font-weight: 500;
        overflow: hidden;
        text-overflow: ellipsis;
        white-space: nowrap;
      }
      .list { display: flex; flex-direction: column; gap: 6px; }
      .row-item { display: flex; align-items: center; gap: 10px; }
      .row-item .pic { border-radius: 4px; flex: none; }
      .person-text { min-width: 0; flex: 1; }
      .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--primary-color); flex: none; }
      h3 { font-size: 15px; font-weight: 500; margin: 14px 0 6px; }
      .shots { display: flex; gap: 8px; overflow-x: auto; }
      .shots figure { margin: 0; flex: none; }
      .shots img { height: 120px; width: auto; max-width: 220px; border-radius: 6px; }
      .history { list-style: none; padding: 0; margin: 0; display: flex; flex-direction: column; gap: 4px; }
      .history li { display: flex; gap: 8px; flex-wrap: wrap; align-items: center; }
      .picker { display: grid; grid-template-columns: repeat(auto-fill, minmax(72px, 1fr)); gap: 8px; margin: 8px 0; }
      .pick { display: flex; flex-direction: column; align-items: center; gap: 2px; padding: 4px; border-radius: 8px; border: 2px solid transparent; font-size: 12px; }
      .pick.chosen { border-color: var(--primary-color); }
    `];function tt(r){let e=new Set,t=[];for(let s of[...r].sort((i,n)=>(n.started_at??0)-(i.started_at??0))){let i=s.last_camera??s.first_camera??"";!s.snapshot_url||e.has(i)||(e.add(i),t.push(s))}return t}var T=class extends _{constructor(){super(),this._config={type:"custom:smart-reid-visits-card"}}static getStubConfig(){return{type:"custom:smart-reid-visits-card",period:"today",limit:20,show_snapshots:!0}}static async getConfigElement(){return document.createElement("smart-reid-visits-card-editor")}setConfig(e){if(!e||typeof e!="object")throw new Error("Invalid configuration");if(e.period&&!["today","24h","7d"].includes(e.period))throw new Error(`period must be today, 24h or 7d (not ${e.period})`);if(e.min_level&&!["low","medium","high","critical"].includes(e.min_level))throw new Error(`min_level must be low, medium, high or critical (not ${e.min_level})`);this._config=e,this._loadedFor=void 0,this._stop(),this.hass&&this.isConnected&&this._start()}getCardSize(){return 6}getGridOptions(){return{columns:12,min_columns:6,rows:6,min_rows:3}}connectedCallback(){super.connectedCallback(),this.hass&&this._start()}disconnectedCallback(){super.disconnectedCallback(),this._stop()}willUpdate(e){e.has("hass")&&this.hass&&!this._unsubscribe&&this._start()}get _limit(){return this._config.limit??20}_stop(){let e=this._unsubscribe;this._unsubscribe=void 0,e?.then(t=>t()).catch(()=>{})}_start(){if(!this.hass||this._unsubscribe)return;let e={type:"smart_reid/visits/subscribe"};this._config.entry_id&&(e.entry_id=this._config.entry_id),this._unsubscribe=this.hass.connection.subscribeMessage(t=>this._live(t),e),this._unsubscribe.catch(t=>{this._unsubscribe=void 0,this._error=t.code==="not_loaded"?a(this.hass,"not_loaded"):a(this.hass,"error",{message:t.message??String(t)})}),this._load()}async _load(){if(!this.hass)return;let e={type:"smart_reid/visits",start:fe(this._config.period),limit:this._limit};this._config.entry_id&&(e.entry_id=this._config.entry_id),this._config.min_level&&(e.min_level=this._config.min_level);try{let t=await this.hass.callWS(e),s=t.visits;for(let i of this._visits??[])s=_e(s,i,this._window());this._visits=s,this._error=void 0,this._warning=t.errors?.length?a(this.hass,"offline"):void 0}catch(t){let s=t;this._error=s.code==="not_loaded"?a(this.hass,"not_loaded"):s.code==="server_unreachable"?a(this.hass,"offline"):a(this.hass,"error",{message:s.message??String(t)}),this._visits=this._visits??[]}}_window(){return{start:fe(this._config.period),minLevel:this._config.min_level,limit:this._limit}}_live(e){if(e.visit)this._visits=_e(this._visits??[],e.visit,this._window()),this._selected?.visit_id===e.visit.visit_id&&(this._selected=this._visits.find(t=>t.visit_id===e.visit?.visit_id)??this._selected);else if(e.labels){let t=e.labels;this._visits=(this._visits??[]).map(s=>t[s.person_id]?{...s,label:t[s.person_id]}:s),this._selected&&t[this._selected.person_id]&&(this._selected={...this._selected,label:t[this._selected.person_id]})}else if(e.merged?.merged_visit_id){let t=e.merged;if(t.reason==="returning"){let s=i=>i.visit_id===t.merged_visit_id?{...i,person_id:t.person_id,label:t.label??i.label,known:t.known??i.known,is_new_identity:!1}:i;this._visits=(this._visits??[]).map(s),this._selected&&(this._selected=s(this._selected))}else this._visits=(this._visits??[]).filter(s=>s.visit_id!==t.merged_visit_id)}}render(){let e=this.hass;return d`<ha-card>
      <div class="header">
        <div class="title">${this._config.title??a(e,"visits_title")}</div>
        <div class="muted">${a(e,`period_${this._config.period??"today"}`)}</div>
      </div>
      ${this._warning?d`<div class="notice offline">${this._warning}</div>`:c}
      ${this._error?d`<div class="notice error">${this._error}</div>`:c}
      <div class="content">${this._renderList()}</div>
      ${this._selected?this._renderDetail(this._selected):c}
    </ha-card>`}_renderList(){let e=this.hass;if(this._visits===void 0)return d`<div class="empty">${a(e,"loading")}</div>`;if(!this._visits.length)return d`<div class="empty">${this._error?"":a(e,"no_visits")}</div>`;let t=this._config.show_snapshots??!0;return d`<ol class="timeline">
      ${this._visits.map(s=>this._renderVisit(s,t))}
    </ol>`}_renderVisit(e,t){let s=this.hass,i=z(e),n=e.ended_at==null;return d`<li class="visit ${e.risk?.level??""}" data-visit=${e.visit_id}>
      <button class="plain visit-row" @click=${()=>this._selected=e}>
        ${t?e.snapshot_url?d`<img class="pic snap" src=${e.snapshot_url} alt="" loading="lazy" />`:d`<div class="pic snap placeholder" aria-hidden="true">?</div>`:c}
        <div class="visit-text">
          <div class="row">
            <span class="time">${e.started_at?S(s,e.started_at):""}</span>
            <span class="who">${e.label??""}</span>
            ${e.known?d`<span class="badge household">${a(s,"household")}</span>`:e.is_new_identity?d`<span class="badge unknown">${a(s,"new_person")}</span>`:c}
            ${e.risk?.level?d`<span class="badge level ${e.risk.level}">${a(s,`risk_${e.risk.level}`)}</span>`:c}
          </div>
          <div class="path muted">${O(s,e)}</div>
          <div class="muted">${i!=null?V(s,i):""}${n?` \xB7 ${a(s,"ongoing")}`:""}</div>
          ${e.risk?.summary?d`<div class="summary">${e.risk.summary}</div>`:c}
          ${e.risk?.reasons?.length?d`<div class="reasons muted">${e.risk.reasons.filter(o=>o.points>0).map(o=>o.text).join(" \xB7 ")}</div>`:c}
        </div>
      </button>
    </li>`}_renderDetail(e){let t=this.hass,s=z(e);return d`<div class="dialog-backdrop" @click=${i=>i.target===i.currentTarget&&(this._selected=void 0)}>
      <div class="dialog" role="dialog" aria-label=${e.label??""}>
        <div class="row">
          <h2>${e.label??""}</h2>
          ${e.risk?.level?d`<span class="badge level ${e.risk.level}">${a(t,`risk_${e.risk.level}`)}${e.risk.score!=null?` ${e.risk.score}`:""}</span>`:c}
          <button class="action close" @click=${()=>this._selected=void 0}>${a(t,"close")}</button>
        </div>
        <div class="muted">${e.started_at?U(t,e.started_at):""} · ${O(t,e)}${s!=null?` \xB7 ${V(t,s)}`:""}</div>
        ${e.snapshot_url?d`<img class="pic big" src=${e.snapshot_url} alt=${v(e.last_camera)} />`:c}
        ${e.thumbnail_url?d`<img class="pic crop" src=${e.thumbnail_url} alt=${e.label??""} />`:c}
        ${e.risk?.summary?d`<p>${e.risk.summary}</p>`:c}
        ${e.risk?.reasons?.length?d`<ul class="reason-list">${e.risk.reasons.map(i=>d`<li>${i.text} <span class="muted">(${i.points>0?"+":""}${i.points})</span></li>`)}</ul>`:c}
      </div>
    </div>`}};T.properties={hass:{attribute:!1},_config:{state:!0},_visits:{state:!0},_error:{state:!0},_warning:{state:!0},_selected:{state:!0}},T.styles=[X,$`
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
    `];var Me={title:"opt_title",filter:"opt_filter",sort:"opt_sort",layout:"opt_layout",hours:"opt_hours",max_people:"opt_max_people",period:"opt_period",min_level:"opt_min_level",limit:"opt_limit",show_snapshots:"opt_show_snapshots",entry_id:"opt_entry_id"};function j(r,e,t){return{name:e,selector:{select:{mode:"dropdown",options:t.map(([s,i])=>({value:s,label:a(r,i)}))}}}}function st(r){return[{name:"title",selector:{text:{}}},j(r,"filter",[["everyone","filter_everyone"],["present","filter_present"],["unknown","filter_unknown"]]),j(r,"sort",[["recent","sort_recent"],["name","sort_name"],["visits","sort_visits"]]),j(r,"layout",[["grid","layout_grid"],["compact","layout_compact"]]),{name:"hours",selector:{number:{min:1,max:720,mode:"box"}}},{name:"max_people",selector:{number:{min:1,max:200,mode:"box"}}},{name:"entry_id",selector:{config_entry:{integration:"smart_reid"}}}]}function it(r){return[{name:"title",selector:{text:{}}},j(r,"period",[["today","period_today"],["24h","period_24h"],["7d","period_7d"]]),j(r,"min_level",[["low","risk_low"],["medium","risk_medium"],["high","risk_high"],["critical","risk_critical"]]),{name:"limit",selector:{number:{min:1,max:200,mode:"box"}}},{name:"show_snapshots",selector:{boolean:{}}},{name:"entry_id",selector:{config_entry:{integration:"smart_reid"}}}]}var B=class extends _{setConfig(e){this._config=e}render(){return this._config?d`<ha-form
      .hass=${this.hass}
      .data=${this._config}
      .schema=${this.schema()}
      .computeLabel=${e=>Me[e.name]?a(this.hass,Me[e.name]):e.name}
      @value-changed=${this._changed}
    ></ha-form>`:d``}_changed(e){e.stopPropagation();let t={...e.detail.value};for(let[s,i]of Object.entries(t))(i===""||i===void 0)&&delete t[s];this._config=t,this.dispatchEvent(new CustomEvent("config-changed",{detail:{config:t},bubbles:!0,composed:!0}))}};B.properties={hass:{attribute:!1},_config:{state:!0}};var Y=class extends B{schema(){return st(this.hass)}},Q=class extends B{schema(){return it(this.hass)}};var rt=[["smart-reid-people-card",P],["smart-reid-visits-card",T],["smart-reid-people-card-editor",Y],["smart-reid-visits-card-editor",Q]];function Ve(r=window.customElements){let e=0;for(let[t,s]of rt)r.get(t)||(r.define(t,s),e+=1);return e}Ve();var Ue=window.customElements;Ue.whenDefined("home-assistant").then(()=>{window.customElements!==Ue&&Ve()>0&&console.info("Smart ReID cards: defined again after Home Assistant's element registry changed")});var ee=window;ee.customCards=ee.customCards??[];var nt="https://github.com/smart-reid/smart-reid/blob/main/docs/integration.md#dashboard-cards";for(let[r,e,t]of[["smart-reid-people-card","Smart ReID people",a(void 0,"people_card_desc")],["smart-reid-visits-card","Smart ReID visits",a(void 0,"visits_card_desc")]])ee.customCards.some(s=>s.type===r)||ee.customCards.push({type:r,name:e,description:t,preview:!1,documentationURL:nt});export{Ve as defineCards};
/*! Bundled license information:

@lit/reactive-element/css-tag.js:
  (**
   * @license
   * Copyright 2019 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

@lit/reactive-element/reactive-element.js:
lit-html/lit-html.js:
lit-element/lit-element.js:
  (**
   * @license
   * Copyright 2017 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

lit-html/is-server.js:
  (**
   * @license
   * Copyright 2022 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)
*/
