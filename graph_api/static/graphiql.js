// GraphiQL at /graphql, from the pinned copies in /static/vendor (no CDN, no inline script:
// the page's Content-Security-Policy allows scripts from this service only).
//
// Every operation needs an API key: put {"Authorization": "Bearer ae_..."} in the Headers
// pane (it is kept in this browser's local storage). GraphiQL sends those headers with every
// HTTP request and, for subscriptions, as the graphql-transport-ws connection_init payload.
// After pasting the key, re-fetch the schema (the circular-arrows button, or reload the page).

const url = window.location.href.split(/[?#]/)[0];
const subscriptionUrl = url.replace(/^http/, "ws");

const KEY_TEMPLATE = '{\n  "Authorization": "Bearer <paste your API key here>"\n}';

const EXAMPLE_QUERY = `# Audio engine GraphiQL.
# Every operation needs an API key: put yours in the
# Headers pane below, then re-fetch the schema
# (circular arrows, bottom left).
#
# Run: Ctrl-Enter. Autocomplete: Ctrl-Space.

query Catalog {
  effects {
    name
    description
  }
}
`;

const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl });

function App() {
  return React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: EXAMPLE_QUERY,
    defaultHeaders: KEY_TEMPLATE,
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    inputValueDeprecation: true,
    plugins: [GraphiQLPluginExplorer.explorerPlugin()],
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
