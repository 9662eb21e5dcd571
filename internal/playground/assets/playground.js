// Keyplane's playground: GraphiQL, set up so that the page keeps no secret.
//
// - Headers live in the tab's memory only. GraphiQL is told not to persist
//   them, and the storage it is given keeps no header whatever it is asked:
//   not the Headers pane, and the tabs and the history only with their
//   headers blanked or set back to the template. It also refuses to keep
//   anything that contains a credential this tab has sent.
// - The Headers pane starts with a template; an Authorization header still
//   holding it is not sent, so that the schema loads without a key.
// - Keys that an older version of this page stored are removed.
(function () {
  'use strict';

  var root = document.getElementById('keyplane');
  var mount = document.getElementById('graphiql');
  var config = JSON.parse(root.getAttribute('data-config'));

  function fail(message) {
    var p = document.createElement('p');
    p.className = 'keyplane-loading keyplane-error';
    p.textContent = message;
    mount.replaceChildren(p);
  }

  if (typeof window.React === 'undefined' || typeof window.ReactDOM === 'undefined' ||
      typeof window.GraphiQL === 'undefined') {
    fail('The playground could not load its scripts. Reload the page; the API itself answers at POST ' +
      config.endpoint + '.');
    return;
  }

  // GraphiQL's dialogs lock the page's scroll with one <style> element
  // (react-remove-scroll), which takes its nonce from this global; the page's
  // policy allows that nonce, fresh for each response, and no other inline
  // style.
  var styleNonce = root.getAttribute('data-style-nonce');
  if (styleNonce) {
    window.__webpack_nonce__ = styleNonce;
  }

  var template = JSON.parse(config.headersTemplate);
  var templateAuthorization = String(template.Authorization);

  // The credentials this tab has sent, kept in memory only.
  var secrets = [];

  function remember(authorization) {
    var value = String(authorization).trim();
    var token = value.replace(/^bearer\s+/i, '').trim();
    [value, token].forEach(function (s) {
      if (s.length >= 8 && secrets.indexOf(s) < 0) {
        secrets.push(s);
      }
    });
  }

  function containsSecret(text) {
    return secrets.some(function (s) { return text.indexOf(s) >= 0; });
  }

  // isTemplate tells an Authorization header that holds no credential yet.
  function isTemplate(value) {
    var v = String(value).trim();
    return v === templateAuthorization || /^bearer\s*$/i.test(v) || v === '';
  }

  function sendable(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (name) {
      var value = headers[name];
      if (name.toLowerCase() === 'authorization') {
        if (isTemplate(value)) {
          return;
        }
        remember(value);
      }
      out[name] = value;
    });
    return out;
  }

  var http = window.GraphiQL.createFetcher({ url: config.endpoint });

  function fetcher(params, options) {
    var opts = Object.assign({}, options || {});
    opts.headers = sendable(opts.headers);
    return http(params, opts);
  }

  // The storage given to GraphiQL: localStorage under "keyplane:", without
  // headers. GraphiQL names its keys "graphiql:…".
  var PREFIX = 'keyplane:';
  var backing = (function () {
    try {
      var s = window.localStorage;
      s.getItem(PREFIX + 'probe');
      return s;
    } catch (e) {
      return null; // storage refused (private mode, policy): memory only
    }
  })();
  var memory = {};

  function backingKeys() {
    if (!backing) {
      return Object.keys(memory);
    }
    var keys = [];
    for (var i = 0; i < backing.length; i++) {
      keys.push(backing.key(i));
    }
    return keys;
  }
  function backingGet(key) { return backing ? backing.getItem(key) : (key in memory ? memory[key] : null); }
  function backingSet(key, value) {
    if (!backing) {
      memory[key] = value;
      return;
    }
    backing.setItem(key, value);
  }
  function backingRemove(key) {
    if (backing) {
      backing.removeItem(key);
    } else {
      delete memory[key];
    }
  }

  // Older versions of this page kept headers, the key among them, under
  // these prefixes.
  backingKeys().forEach(function (key) {
    if (key.indexOf('keyplanegraphiql:') === 0 || key.indexOf('graphiql:') === 0) {
      backingRemove(key);
    }
  });

  function isHeadersKey(key) {
    return /(^|:)(headers|shouldPersistHeaders)$/.test(key);
  }
  // The keys whose values are JSON that may carry "headers": the tabs, and
  // the history and favourites.
  function isStructuredKey(key) {
    return /(^|:)(tabState|queries|favorites)$/.test(key);
  }

  // withoutHeaders sets every "headers" in a stored value to replacement.
  function withoutHeaders(v, replacement) {
    if (Array.isArray(v)) {
      return v.map(function (x) { return withoutHeaders(x, replacement); });
    }
    if (v && typeof v === 'object') {
      var out = {};
      Object.keys(v).forEach(function (k) {
        out[k] = k === 'headers' ? replacement : withoutHeaders(v[k], replacement);
      });
      return out;
    }
    return v;
  }

  // The tabs are stored with no headers, as GraphiQL itself stores them when
  // it does not persist headers (it finds the tab to reopen by them); the
  // history with the template, which a click on an entry brings back.
  function storable(key, value) {
    if (isHeadersKey(key)) {
      return null;
    }
    var text = String(value);
    if (isStructuredKey(key)) {
      try {
        var tabs = /(^|:)tabState$/.test(key);
        text = JSON.stringify(withoutHeaders(JSON.parse(text), tabs ? null : config.headersTemplate));
      } catch (e) {
        return null; // not what GraphiQL writes there: not kept
      }
    }
    return containsSecret(text) ? null : text;
  }

  // readable gives the tabs back with the template in their Headers pane,
  // but for the tab that was in front: GraphiQL finds it by its empty
  // headers, and fills its pane with the template itself.
  function readable(key, text) {
    if (text === null || !/(^|:)tabState$/.test(key)) {
      return text;
    }
    try {
      var state = JSON.parse(text);
      (state.tabs || []).forEach(function (tab, i) {
        if (i !== state.activeTabIndex && (tab.headers === null || tab.headers === undefined)) {
          tab.headers = config.headersTemplate;
        }
      });
      return JSON.stringify(state);
    } catch (e) {
      return null;
    }
  }

  var storage = {
    getItem: function (key) {
      return isHeadersKey(key) ? null : readable(key, backingGet(PREFIX + key));
    },
    setItem: function (key, value) {
      var text = storable(key, value);
      if (text === null) {
        backingRemove(PREFIX + key);
      } else {
        backingSet(PREFIX + key, text);
      }
    },
    removeItem: function (key) {
      backingRemove(PREFIX + key);
    },
    clear: function () {
      backingKeys().forEach(function (key) {
        if (key.indexOf(PREFIX) === 0) {
          backingRemove(key);
        }
      });
    },
    key: function (i) {
      var keys = backingKeys().filter(function (key) { return key.indexOf(PREFIX) === 0; });
      return i >= 0 && i < keys.length ? keys[i].slice(PREFIX.length) : null;
    },
    get length() {
      return backingKeys().filter(function (key) { return key.indexOf(PREFIX) === 0; }).length;
    },
  };

  var props = {
    fetcher: fetcher,
    storage: storage,
    shouldPersistHeaders: false,
    showPersistHeadersSettings: false,
    defaultHeaders: config.headersTemplate,
    defaultEditorToolsVisibility: 'headers',
    defaultTabs: config.tabs.map(function (tab) {
      return { query: tab.query, variables: tab.variables || '', headers: config.headersTemplate };
    }),
  };
  window.ReactDOM.createRoot(mount).render(window.React.createElement(window.GraphiQL, props));
})();
