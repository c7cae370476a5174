import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';

export async function connectClient(address: string, namespace: string): Promise<Client> {
  const connection = await Connection.connect({ address });
  return new Client({ connection, namespace });
}

/**
 * Where a workflow stands: running, closed (completed, failed, cancelled, terminated, timed out) or
 * absent (never started, or gone from the server past its retention). Callers decide what absent
 * means for them: a story never started is not closed; a delivery gone from the server is.
 */
export async function workflowStanding(client: Client, workflowId: string): Promise<'running' | 'closed' | 'absent'> {
  try {
    const { status } = await client.workflow.getHandle(workflowId).describe();
    return status.name === 'RUNNING' ? 'running' : 'closed';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'absent';
    throw err;
  }
}
