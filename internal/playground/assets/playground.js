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
// - Subscriptions run over Server-Sent Events, with fetch and the same
//   headers: the key goes where it goes for a query, in the Authorization
//   header of a request to the page's own origin, and nowhere else.
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
    if (operationType(params.query, params.operationName) === 'subscription') {
      return subscribe(params, opts.headers);
    }
    return http(params, opts);
  }

  // operationType returns the type ("query", "mutation" or "subscription")
  // of the operation a request runs: the one named operationName, else the
  // document's only one. It reads the document's tokens, skipping comments
  // and strings, and looks only where a definition begins, so that neither a
  // field, an alias, an operation nor a directive named "subscription" fools
  // it. It returns null when it cannot tell (the document does not lex, its
  // brackets do not balance, no operation or several match); the request then
  // goes as a query does, and the server says what is wrong.
  function operationType(query, operationName) {
    var text = String(query || '');
    var n = text.length;
    var ops = [];
    var depth = 0; // brackets open: { ( [
    var atStart = true; // at depth 0, where a definition begins
    var naming = null; // the operation whose name may come next
    var i = 0;
    while (i < n) {
      var c = text.charAt(i);
      if (c === '#') { // a comment, to the end of its line
        while (i < n && text.charAt(i) !== '\n' && text.charAt(i) !== '\r') {
          i++;
        }
        continue;
      }
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ',' || c === '\ufeff') {
        i++;
        continue;
      }
      if (/[_A-Za-z]/.test(c)) {
        var start = i;
        while (i < n && /[_0-9A-Za-z]/.test(text.charAt(i))) {
          i++;
        }
        var name = text.slice(start, i);
        if (depth === 0 && atStart) {
          atStart = false;
          naming = null;
          if (name === 'query' || name === 'mutation' || name === 'subscription') {
            naming = { type: name, name: null };
            ops.push(naming);
          }
        } else if (depth === 0 && naming) {
          naming.name = name;
          naming = null;
        }
        continue;
      }
      naming = null; // any other token ends where the name may stand
      if (c === '"') {
        i = text.slice(i, i + 3) === '"""' ? skipBlockString(text, i + 3) : skipString(text, i + 1);
        if (i < 0) {
          return null;
        }
        continue;
      }
      if (c === '{' || c === '(' || c === '[') {
        if (depth === 0 && atStart && c === '{') {
          ops.push({ type: 'query', name: null }); // the shorthand: { … }
        }
        atStart = false;
        depth++;
      } else if (c === '}' || c === ')' || c === ']') {
        depth--;
        if (depth < 0) {
          return null;
        }
        atStart = depth === 0 && c === '}';
      } else if (depth === 0) {
        atStart = false;
      }
      i++;
    }
    if (depth !== 0) {
      return null;
    }
    var chosen = operationName ? ops.filter(function (op) { return op.name === operationName; }) : ops;
    return chosen.length === 1 ? chosen[0].type : null;
  }

  // skipString returns the index just past the string whose content starts
  // at i, or -1 if it does not end on its line.
  function skipString(text, i) {
    while (i < text.length) {
      var c = text.charAt(i);
      if (c === '"') {
        return i + 1;
      }
      if (c === '\n' || c === '\r') {
        return -1;
      }
      i += c === '\\' ? 2 : 1;
    }
    return -1;
  }

  // skipBlockString returns the index just past the block string whose
  // content starts at i, or -1 if it does not end; \""" does not end it.
  function skipBlockString(text, i) {
    while (i < text.length) {
      if (text.slice(i, i + 4) === '\\"""') {
        i += 4;
      } else if (text.slice(i, i + 3) === '"""') {
        return i + 3;
      } else {
        i++;
      }
    }
    return -1;
  }

  // eventStream reads Server-Sent Events from text pushed in pieces of any
  // size: lines end with CRLF, LF or CR (a CR at a piece's end waits for the
  // next piece, which may begin with its LF); "data" lines join with LF;
  // comments (the server's ": ping"), "id" and "retry" are ignored. dispatch
  // gets each event's type ("message" when none) and data. Unlike a
  // browser's EventSource it also dispatches an event with a type and no
  // data: graphql-sse's "complete" has none. end() takes the stream's end:
  // an event no blank line closed is dropped, as the standard says.
  function eventStream(dispatch) {
    var buffer = '';
    var type = '';
    var data = [];

    function line(text) {
      if (text === '') {
        if (data.length > 0 || type !== '') {
          var t = type || 'message';
          var d = data.join('\n');
          type = '';
          data = [];
          dispatch(t, d);
        }
        return;
      }
      if (text.charAt(0) === ':') {
        return;
      }
      var colon = text.indexOf(':');
      var field = colon < 0 ? text : text.slice(0, colon);
      var value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.charAt(0) === ' ') {
        value = value.slice(1);
      }
      if (field === 'event') {
        type = value;
      } else if (field === 'data') {
        data.push(value);
      }
    }

    return {
      push: function (text) {
        buffer += text;
        var start = 0;
        for (var i = 0; i < buffer.length; i++) {
          var c = buffer.charAt(i);
          if (c !== '\n' && c !== '\r') {
            continue;
          }
          if (c === '\r' && i + 1 === buffer.length) {
            break; // its LF may begin the next piece
          }
          var text = buffer.slice(start, i);
          if (c === '\r' && buffer.charAt(i + 1) === '\n') {
            i++;
          }
          start = i + 1;
          line(text);
        }
        buffer = buffer.slice(start);
      },
      end: function () {
        if (buffer.charAt(buffer.length - 1) === '\r') {
          line(buffer.slice(0, -1));
        }
        buffer = '';
        type = '';
        data = [];
      },
    };
  }

  // subscribe runs a subscription over Server-Sent Events: a POST to the
  // endpoint, with the headers of the Headers pane, that asks for
  // text/event-stream. It returns the async iterable GraphiQL reads the
  // results from: each "next" event's data, until "complete". GraphiQL stops
  // a subscription (Stop, or Run again) by calling return() on the iterator
  // it asks the iterable for anew, so the iterable is its own iterator;
  // return() aborts the request, which ends the subscription on the server,
  // and ends a next() that waits. An answer that is not an event stream (a
  // refusal before any event: no key, a limit, a malformed request) is the
  // one result.
  function subscribe(params, headers) {
    var requestHeaders = new Headers(headers);
    requestHeaders.set('Content-Type', 'application/json');
    requestHeaders.set('Accept', 'text/event-stream');
    var controller = new AbortController();
    var response = window.fetch(config.endpoint, {
      method: 'POST',
      headers: requestHeaders,
      body: JSON.stringify(params),
      signal: controller.signal,
    });
    response.catch(function () {}); // stopped before next() read it

    var results = []; // received, not yet taken
    var complete = false; // the server said "complete", or answered once
    var stopped = false; // return() was called, or it failed
    var reader = null;
    var decoder = new TextDecoder();
    var parser = eventStream(function (type, data) {
      if (complete) {
        return;
      }
      if (type === 'next') {
        results.push(JSON.parse(data));
      } else if (type === 'complete') {
        complete = true;
      }
    });

    function stop() {
      stopped = true;
      controller.abort();
    }

    // read waits for the next piece of the answer and parses it.
    function read() {
      if (!reader) {
        return response.then(function (res) {
          if (!/^text\/event-stream/i.test(res.headers.get('Content-Type') || '')) {
            return res.text().then(function (text) {
              try {
                results.push(JSON.parse(text));
              } catch (e) {
                throw new Error('The server answered HTTP ' + res.status + ', not an event stream: ' + text);
              }
              complete = true;
            });
          }
          reader = res.body.getReader();
        });
      }
      return reader.read().then(function (piece) {
        if (!piece.done) {
          parser.push(decoder.decode(piece.value, { stream: true }));
          return;
        }
        parser.push(decoder.decode());
        parser.end();
        if (!complete) {
          throw new Error('The event stream ended before the subscription completed.');
        }
      });
    }

    var finished = { value: undefined, done: true };
    var iterator = {
      next: function () {
        if (stopped) {
          return Promise.resolve(finished);
        }
        if (results.length > 0) {
          return Promise.resolve({ value: results.shift(), done: false });
        }
        if (complete) {
          stop();
          return Promise.resolve(finished);
        }
        return read().then(iterator.next, function (err) {
          if (stopped) {
            return finished; // aborted by return()
          }
          stop();
          throw err;
        });
      },
      return: function () {
        stop();
        return Promise.resolve(finished);
      },
    };
    iterator[Symbol.asyncIterator] = function () { return iterator; };
    return iterator;
  }

  // The two parsers, for the browser test to try on the page itself. They
  // keep nothing of the page's and see no header.
  window.KeyplanePlayground = Object.freeze({ operationType: operationType, eventStream: eventStream });

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
