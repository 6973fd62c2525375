import { Route, Switch } from 'wouter-preact';
import { Layout } from './components/layout.js';
import { AlertsPage } from './pages/alerts.js';
import { CommandsPage } from './pages/commands.js';
import { DeadLettersPage } from './pages/dead-letters.js';
import { DevicePage } from './pages/device.js';
import { DevicesPage } from './pages/devices.js';
import { JobPage, JobsPage } from './pages/jobs.js';
import { OverviewPage } from './pages/overview.js';
import { ReportsPage } from './pages/reports.js';
import { SignIn } from './pages/sign-in.js';
import { SessionProvider } from './session.js';

export function App() {
  return (
    <SessionProvider
      checking={<p class="center muted">Checking your key…</p>}
      signIn={(submit, message) => <SignIn submit={submit} message={message} />}
    >
      <Layout>
        <Switch>
          <Route path="/" component={OverviewPage} />
          <Route path="/devices" component={DevicesPage} />
          <Route path="/devices/:id">{(params) => <DevicePage id={decodeURIComponent(params.id)} />}</Route>
          <Route path="/alerts" component={AlertsPage} />
          <Route path="/commands" component={CommandsPage} />
          <Route path="/jobs" component={JobsPage} />
          <Route path="/jobs/:id">{(params) => <JobPage id={decodeURIComponent(params.id)} />}</Route>
          <Route path="/reports" component={ReportsPage} />
          <Route path="/dead-letters" component={DeadLettersPage} />
          <Route>
            <p>There is no such page. Go to the overview.</p>
          </Route>
        </Switch>
      </Layout>
    </SessionProvider>
  );
}
