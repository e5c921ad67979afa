package redisstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/signald/signald/internal/group"
)

// sentinel is kept in every group's set, so that a group with no members
// still exists. It is not a valid user ID, and is never reported as a member.
const sentinel = ""

// AddMembers implements group.Store. The empty user ID is reserved, and
// never becomes a member.
func (s *Store) AddMembers(ctx context.Context, groupID string, members []string) ([]string, error) {
	key := s.groupKey(groupID)
	add := make([]any, 0, len(members)+1)
	add = append(add, sentinel)
	for _, m := range members {
		add = append(add, m)
	}
	var all *redis.StringSliceCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, key, add...)
		all = p.SMembers(ctx, key)
		return nil
	})
	if err != nil {
		return nil, unavailable("add members to group "+groupID, err)
	}
	return membersOf(all.Val()), nil
}

// RemoveMember implements group.Store.
func (s *Store) RemoveMember(ctx context.Context, groupID, userID string) error {
	key := s.groupKey(groupID)
	var exists *redis.IntCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		if userID != sentinel {
			p.SRem(ctx, key, userID)
		}
		return nil
	})
	if err != nil {
		return unavailable("remove member of group "+groupID, err)
	}
	if exists.Val() == 0 {
		return fmt.Errorf("redisstore: group %s: %w", groupID, group.ErrNotFound)
	}
	return nil
}

// Members implements group.Store.
func (s *Store) Members(ctx context.Context, groupID string) ([]string, error) {
	all, err := s.c.SMembers(ctx, s.groupKey(groupID)).Result()
	if err != nil {
		return nil, unavailable("members of group "+groupID, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("redisstore: group %s: %w", groupID, group.ErrNotFound)
	}
	return membersOf(all), nil
}

// Delete implements group.Store.
func (s *Store) Delete(ctx context.Context, groupID string) error {
	n, err := s.c.Del(ctx, s.groupKey(groupID)).Result()
	if err != nil {
		return unavailable("delete group "+groupID, err)
	}
	if n == 0 {
		return fmt.Errorf("redisstore: group %s: %w", groupID, group.ErrNotFound)
	}
	return nil
}

// FirstNonMember implements group.Store. It is one round trip.
func (s *Store) FirstNonMember(ctx context.Context, groupID string, users []string) (string, error) {
	key := s.groupKey(groupID)
	var exists *redis.IntCmd
	var member *redis.BoolSliceCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, key)
		if len(users) > 0 {
			ask := make([]any, len(users))
			for i, u := range users {
				ask[i] = u
			}
			member = p.SMIsMember(ctx, key, ask...)
		}
		return nil
	})
	if err != nil {
		return "", unavailable("members of group "+groupID, err)
	}
	if exists.Val() == 0 {
		return "", fmt.Errorf("redisstore: group %s: %w", groupID, group.ErrNotFound)
	}
	for i, u := range users {
		if u == sentinel || !member.Val()[i] {
			return u, nil
		}
	}
	return "", nil
}

// membersOf returns the members of a group's set, sorted, without the
// sentinel.
func membersOf(set []string) []string {
	out := slices.DeleteFunc(set, func(m string) bool { return m == sentinel })
	slices.Sort(out)
	return out
}
