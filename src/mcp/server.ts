/**
 * `custody-mcp`: the MCP server for agents, over stdio. Configuration from the environment
 * (LOOPCTL_SERVER and the LOOPCTL_*_KEY variables, see tools.ts). While it runs it keeps alive the
 * claims its agent key holds.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CustodyClient } from '../clients/http.js';
import { ClaimKeeper } from './claim-keeper.js';
import { McpEnv, createMcpServer, keyFor } from './tools.js';

const parsed = McpEnv.safeParse(process.env);
if (!parsed.success) {
  const issue = parsed.error.issues[0];
  process.stderr.write(`configuration error: ${issue.path.join('.')} ${issue.message}\n`);
  process.exit(1);
}
const env = parsed.data;
const log = (line: string) => process.stderr.write(`custody-mcp: ${line}\n`);
const agentKey = keyFor(env, 'agent');
const keeper = agentKey ? new ClaimKeeper(new CustodyClient(env.LOOPCTL_SERVER, agentKey), log) : undefined;
const server = createMcpServer(env, keeper);
const transport = new StdioServerTransport();
transport.onclose = () => keeper?.stop();
await server.connect(transport);
// Claims held from before this server started are kept alive too; a service that is not up yet
// only means there is nothing to find now.
keeper?.discover().catch((err: unknown) => log(`could not look for held claims: ${String(err)}`));
