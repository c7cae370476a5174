/** The story workflow's typed search attributes: what ops filter on in the Temporal UI. */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const StoryStatus = defineSearchAttributeKey('StoryStatus', SearchAttributeType.KEYWORD);
export const VerifiedStatus = defineSearchAttributeKey('VerifiedStatus', SearchAttributeType.KEYWORD);
export const ProjectId = defineSearchAttributeKey('ProjectId', SearchAttributeType.KEYWORD);
export const AssignedAgent = defineSearchAttributeKey('AssignedAgent', SearchAttributeType.KEYWORD);
export const TenantId = defineSearchAttributeKey('TenantId', SearchAttributeType.KEYWORD);
export const Stalled = defineSearchAttributeKey('Stalled', SearchAttributeType.KEYWORD);

/** How many custody violations (rejected attempts such as a self-review) the story has seen. */
export const CustodyViolations = defineSearchAttributeKey('CustodyViolations', SearchAttributeType.INT);

export const STORY_SEARCH_ATTRIBUTES = [
  StoryStatus,
  VerifiedStatus,
  ProjectId,
  AssignedAgent,
  TenantId,
  Stalled,
  CustodyViolations,
];
